"""The local Batch service as a whole: wiring, start and stop, and the Python test API."""
from __future__ import annotations

import atexit
import base64
import secrets
import threading
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from .arm import ArmError, ResourceManager
from .auth import SharedKeyVerifier
from .faults import (
    FaultInjector,
    FaultKind,
    FaultRule,
    FaultTiming,
    RequestLog,
    RequestRecord,
)
from .http_messages import Response
from .identity import Identities
from .jobs import JobEngine
from .node_lives import NodeLife, lives_of
from .pools import PoolEngine
from .preemption import Preemption, Preemptions
from .routes import AdminRoutes, BatchRoutes
from .routing import OtherService, RequestDispatcher, Router
from .scheduler import TaskScheduler
from .server import BatchHttpServer, TlsFiles, server_context
from .settings import ServiceSettings
from .state import BatchState


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
        self._pools = PoolEngine(self.state)
        self.preemptions = Preemptions(self.state, self._pools)
        self._scheduler = TaskScheduler(self.state, jobs.on_task_finished,
                                        [self._pools.housekeeping, jobs.housekeeping])
        batch_routes, admin_routes, imds_routes, arm_routes = Router(), Router(), Router(), Router()
        BatchRoutes(self.state, self._pools, jobs).register(batch_routes)
        AdminRoutes(self.faults, self.request_log, settings, self.preemptions, self.state).register(admin_routes)
        self.identities = Identities(self.state, settings)
        self.identities.register(imds_routes)
        ResourceManager(self.state, self._pools, self.identities).register(arm_routes)
        others = (OtherService(Identities.handles, imds_routes, lambda: Response.json(404, {"error": "not_found"})),
                  OtherService(ResourceManager.handles, arm_routes, lambda: ArmError(
                      404, "InvalidResourceType", "This local service serves only Pool_Create.").response()))
        dispatcher = RequestDispatcher(settings, SharedKeyVerifier(account, key), self.state.job_tokens, self.faults,
                                       self.request_log, batch_routes, admin_routes,
                                       bearer=self.identities.authorize_batch, others=others)
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
        with self.state.lock:
            handles = [task.handle for job in self.state.jobs.values() for task in job.tasks.values() if task.handle]
            handles += [node.start_task_handle for pool in self.state.pools.values() for node in pool.nodes.values()
                        if node.start_task_handle]
        for handle in handles:
            handle.cancel("delete")
        self._scheduler.join_executions(timeout_s=10)

    def __enter__(self) -> BatchService:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def inject_fault(self, kind: FaultKind, *, path: str = ".*", method: str | None = None, count: int | None = None,
                     probability: float | None = None, seed: int | None = None, retry_after: int = 1,
                     timing: FaultTiming = "before") -> FaultRule:
        """Add a fault rule (see ``faults``): e.g. ``inject_fault("503", path="/addtaskcollection$", count=2)``."""
        return self.faults.add(kind, path=path, method=method, count=count, probability=probability, seed=seed,
                               retry_after=retry_after, timing=timing)

    def preempt(self, pool_id: str, node_id: str | None = None, *, job_id: str | None = None,
                task_id: str | None = None, restore_after_s: float | None | str = "default") -> Preemption:
        """Preempt a Spot node (see ``preemption``): ``node_id``, or the node running ``job_id``/``task_id``,
        or the first busy Spot node. Its capacity comes back after ``restore_after_s`` (by default
        ``settings.preemption_restore_s``; None: never)."""
        restore = self.settings.preemption_restore_s if restore_after_s == "default" else restore_after_s
        return self.preemptions.preempt(pool_id, node_id, job_id=job_id, task_id=task_id,
                                        restore_after_s=None if restore is None else float(restore))

    def node_lives(self, pool_id: str) -> list[NodeLife]:
        """Every node pool ``pool_id`` has had, and when it was billed (see ``node_lives``), as copies."""
        with self.state.lock:
            return [replace(life, preempted=[list(p) for p in life.preempted])
                    for life in lives_of(self.state, pool_id)]

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.faults.clear()

    def requests(self, *, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged Batch API requests, optionally filtered by method and a path regex."""
        return self.request_log.entries(method=method, path_pattern=path)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.request_log.clear()

    @property
    def resource_id(self) -> str:
        """The account's Azure Resource Manager id (``arm`` serves pool creation under it)."""
        return (f"/subscriptions/{self.settings.subscription_id}/resourceGroups/{self.settings.resource_group}"
                f"/providers/Microsoft.Batch/batchAccounts/{self.account}")

    def describe(self) -> dict[str, Any]:
        """``url``, ``account``, ``key`` and ``root`` as JSON-ready values."""
        return {"url": self.url, "account": self.account, "key": self.key, "root": str(self.root_dir)}


def start_batch_service(root_dir: Path, *, account: str = "orchtest", key: str | None = None, port: int = 0,
                        host: str = "127.0.0.1", settings: ServiceSettings | None = None,
                        tls: TlsFiles | None = None) -> BatchService:
    """Start a local Batch service on ``host`` (a free port unless ``port`` is given; HTTPS with ``tls``);
    without ``key``, a random 64-byte base64 key like Batch's."""
    root_dir = Path(root_dir)
    root_dir.mkdir(parents=True, exist_ok=True)
    key = key or base64.b64encode(secrets.token_bytes(64)).decode("ascii")
    return BatchService(root_dir, account=account, key=key, host=host, port=port,
                        settings=settings or ServiceSettings(), tls=tls).start()
