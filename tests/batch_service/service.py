"""The local Batch service as a whole: wiring, start and stop, and the Python test API."""
from __future__ import annotations

import atexit
import base64
import secrets
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .auth import SharedKeyVerifier
from .context import ServiceContext
from .dispatcher import RequestDispatcher
from .faults import FaultInjector, FaultKind, FaultRule, FaultTiming, RequestLog, RequestRecord
from .job_engine import JobEngine
from .launcher import TaskLauncher
from .node_boot import NodeBooter
from .pool_engine import PoolEngine
from .pool_scaling import PoolScaling
from .routes_admin import AdminRoutes
from .routes_files import FileRoutes
from .routes_jobs import JobRoutes
from .routes_nodes import NodeRoutes
from .routes_pools import PoolRoutes
from .routes_tasks import TaskRoutes
from .routing import Router
from .scheduler import TaskScheduler
from .server import BatchHttpServer
from .settings import ServiceSettings
from .state import BatchState
from .tls import TlsFiles, server_context


class BatchService:
    """A running local Batch account at ``url`` (``account``/``key`` for Shared Key auth).

    Task processes run on this host; node directories live under ``root_dir/nodes``.
    ``settings`` may be changed while it runs. Use as a context manager or call ``stop()``.
    With ``tls`` it serves HTTPS (``url`` starts with ``https://``), which bearer job tokens need.
    """

    def __init__(self, root_dir: Path, *, account: str, key: str, host: str, port: int,
                 settings: ServiceSettings, tls: TlsFiles | None = None) -> None:
        self.root_dir = root_dir
        self.account = account
        self.key = key
        self.settings = settings
        self.state = BatchState(root_dir, account, settings)
        self.faults = FaultInjector()
        self.request_log = RequestLog()
        jobs = JobEngine(self.state)
        pools = PoolEngine(self.state, NodeBooter(self.state))
        scaling = PoolScaling(self.state, pools)
        self._ctx = ServiceContext(self.state, pools, scaling, jobs, self.faults, self.request_log)
        self._launcher = TaskLauncher(self.state, jobs.on_task_finished)
        self._scheduler = TaskScheduler(self.state, self._launcher, jobs.on_task_finished,
                                        [pools.housekeeping, scaling.housekeeping, jobs.housekeeping])
        batch_routes, admin_routes = Router(), Router()
        for routes in (PoolRoutes(self._ctx), NodeRoutes(self._ctx), JobRoutes(self._ctx),
                       TaskRoutes(self._ctx), FileRoutes(self._ctx)):
            routes.register(batch_routes)
        AdminRoutes(self._ctx).register(admin_routes)
        dispatcher = RequestDispatcher(self._ctx, SharedKeyVerifier(account, key), batch_routes, admin_routes)
        self._server = BatchHttpServer((host, port), dispatcher, settings,
                                       server_context(tls) if tls is not None else None)
        self.url = f"{self._server.scheme}://{self._server.authority}"
        self.state.base_url = self.url
        self._serving = threading.Thread(target=self._server.serve_forever, name="batch-http", daemon=True)
        self._stopped = False

    def start(self) -> BatchService:
        """Start serving and scheduling (and make sure ``stop`` runs at interpreter exit)."""
        self.state.nodes_dir().mkdir(parents=True, exist_ok=True)
        self._scheduler.start()
        self._serving.start()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop serving, kill every task and start task process, wait for executions."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        self._server.shutdown()
        self._server.server_close()
        self._scheduler.stop()
        self._ctx.pools.shutdown()
        with self.state.lock:
            handles = [task.handle for job in self.state.jobs.values() for task in job.tasks.values() if task.handle]
        for handle in handles:
            handle.cancel("delete")
        self._launcher.join(timeout_s=10)

    def __enter__(self) -> BatchService:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def inject_fault(self, kind: FaultKind, *, path: str = ".*", method: str | None = None, count: int | None = None,
                     probability: float | None = None, seed: int | None = None, retry_after: int = 1,
                     timing: FaultTiming = "before") -> FaultRule:
        """Add a fault rule (see ``faults``): e.g. ``inject_fault("503", path="/addtaskcollection$", count=2)``."""
        return self.faults.add(kind, path_pattern=path, method=method, count=count, probability=probability,
                               seed=seed, retry_after_s=retry_after, timing=timing)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.faults.clear()

    def requests(self, *, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged Batch API requests, optionally filtered by method and a path regex."""
        return self.request_log.entries(method=method, path_pattern=path)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.request_log.clear()

    def describe(self) -> dict[str, Any]:
        """``url``, ``account``, ``key`` and ``root`` as JSON-ready values."""
        return {"url": self.url, "account": self.account, "key": self.key, "root": str(self.root_dir)}


def new_account_key() -> str:
    """A random base64 account key like Batch's (64 bytes)."""
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def start_batch_service(root_dir: Path, *, account: str = "orchtest", key: str | None = None, port: int = 0,
                        host: str = "127.0.0.1", settings: ServiceSettings | None = None,
                        tls: TlsFiles | None = None) -> BatchService:
    """Start a local Batch service on ``host`` (a free port unless ``port`` is given; HTTPS with ``tls``)."""
    root_dir = Path(root_dir)
    root_dir.mkdir(parents=True, exist_ok=True)
    service = BatchService(root_dir, account=account, key=key or new_account_key(), host=host, port=port,
                           settings=settings or ServiceSettings(), tls=tls)
    return service.start()
