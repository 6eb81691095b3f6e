"""The job manager: ``python -m orchestrator.backends.azure.sweep_manager``, run by Batch as the
job manager task of an adaptive sweep job, or of a job with budgets (see ``sweep_setup``).

With ``ORCH_BUDGET_PAYLOAD_URL`` it first fetches the budget payload (uploaded by ``submit``) and
keeps the job's limits in a thread (``budget_keeper``), recording the pool's cost ledger as it
goes. With ``ORCH_SWEEP_PAYLOAD_URL`` it waits for its sweep payload (uploaded by
``start_sweep``), then runs ``SweepController`` over ``BatchSweepCluster`` against
``AZ_BATCH_ACCOUNT_URL`` until the sweep is settled or the job is finished, cancelled or gone; a
sweep whose budget is reached is halted (no trial added). Without a sweep it keeps the budgets
until the job needs no keeping. It authenticates as the pool's managed
identity (``ORCH_BATCH_IDENTITY_CLIENT_ID`` or ``…_RESOURCE_ID``: azure-identity's
``ManagedIdentityCredential`` asks the node's identity endpoint for a token of Batch's scope),
else with the job token Batch gave it (``AZ_BATCH_AUTHENTICATION_TOKEN``). Every few seconds it writes the controller's summary to
``STATE_FILE`` in its working directory, where ``AzureBackend.sweep_state`` reads it. Exit status
0 when done, 1 when it cannot start.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.backends.azure.batch_client import BatchApi
from orchestrator.backends.azure.budget_keeper import BudgetKeeper
from orchestrator.backends.azure.budgets import BudgetPayload
from orchestrator.backends.azure.credentials import BatchAccount
from orchestrator.backends.azure.sweep_cluster import BatchSweepCluster, StoppedMarkers
from orchestrator.backends.azure.sweep_setup import (
    BUDGET_PAYLOAD_URL_ENV,
    IDENTITY_CLIENT_ENV,
    IDENTITY_RESOURCE_ENV,
    PAYLOAD_URL_ENV,
    STATE_FILE,
    ManagerPayload,
)
from orchestrator.sweep.controller import SweepController

log = logging.getLogger("orch.sweep_manager")
PAYLOAD_WAIT = 3600.0
TOKEN_LIFETIME = 3600
STATE_SECONDS = 2.0


class JobToken:
    """A ``TokenCredential`` that hands out the job token Batch put in the environment."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + TOKEN_LIFETIME)


def fetch_payload(url: str, wait: float = PAYLOAD_WAIT, poll: float = 1.0) -> ManagerPayload:
    """The sweep payload at ``url``, waiting while it is not uploaded yet (404)."""
    return ManagerPayload.from_json(fetch(url, wait, poll))


def fetch(url: str, wait: float = PAYLOAD_WAIT, poll: float = 1.0) -> bytes:
    """The blob at ``url``, waiting while it is not uploaded yet (404)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                raise
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
        time.sleep(poll)


def credential(environ: dict[str, str]) -> Any:
    """The pool identity's credential when the task names one, else the job token."""
    client_id, resource_id = environ.get(IDENTITY_CLIENT_ENV), environ.get(IDENTITY_RESOURCE_ENV)
    if client_id or resource_id:
        from azure.identity import ManagedIdentityCredential

        if client_id:
            return ManagedIdentityCredential(client_id=client_id)
        return ManagedIdentityCredential(identity_config={"resource_id": str(resource_id)})
    return JobToken(environ["AZ_BATCH_AUTHENTICATION_TOKEN"])


def batch_api(environ: dict[str, str]) -> BatchApi:
    """The Batch account of this node's job (see ``credential``)."""
    url = environ["AZ_BATCH_ACCOUNT_URL"]
    if "://" not in url:
        url = f"https://{url}"
    account = BatchAccount(account=environ.get("AZ_BATCH_ACCOUNT_NAME", "batch"), url=url, aad=True)
    return BatchApi(account, credential=credential(environ))


def publish_state(summary: Any, path: Path, stop: threading.Event) -> None:
    """Write ``summary()`` to ``path`` every ``STATE_SECONDS`` until ``stop`` is set."""
    while True:
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(summary(), default=str))
        staging.replace(path)
        if stop.wait(STATE_SECONDS):
            return


def halt_sweep(controller: SweepController, sweep: str, reason: str) -> None:
    """No trial is added to ``sweep`` any more (its budget is reached)."""
    for adaptive in controller.sweeps:
        if adaptive.base_id == sweep:
            adaptive.halt(reason)


def main(environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ) if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    identity = environ.get(IDENTITY_CLIENT_ENV) or environ.get(IDENTITY_RESOURCE_ENV)
    needed = ("AZ_BATCH_ACCOUNT_URL",) + (() if identity else ("AZ_BATCH_AUTHENTICATION_TOKEN",))
    missing = [name for name in needed if not environ.get(name)]
    if missing or not (environ.get(PAYLOAD_URL_ENV) or environ.get(BUDGET_PAYLOAD_URL_ENV)):
        log.error("missing %s: run this as the job manager task orch creates",
                  ", ".join(missing) or f"{PAYLOAD_URL_ENV} or {BUDGET_PAYLOAD_URL_ENV}")
        return 1
    api, stop = batch_api(environ), threading.Event()
    keeper = (BudgetKeeper(api, BudgetPayload.from_json(fetch(environ[BUDGET_PAYLOAD_URL_ENV])))
              if environ.get(BUDGET_PAYLOAD_URL_ENV) else None)
    keeping = threading.Thread(target=keeper.run, args=(stop,), daemon=True) if keeper is not None else None
    if keeping is not None:
        keeping.start()
    controller = _controller(api, environ, keeper)
    state_path = Path(environ.get("AZ_BATCH_TASK_WORKING_DIR", ".")) / STATE_FILE
    summary = lambda: {**(controller.summary() if controller else {}),  # noqa: E731
                       **({"budgets": keeper.summary()} if keeper else {})}
    threading.Thread(target=publish_state, args=(summary, state_path, stop), daemon=True).start()
    if controller is not None:
        controller.run()
    if keeping is not None:  # the job's other tasks may still run: keep its budget until it needs none
        keeping.join()
    stop.set()
    log.info("done: %s", summary())
    return 0


def _controller(api: BatchApi, environ: dict[str, str], keeper: BudgetKeeper | None) -> SweepController | None:
    """The sweep controller when the job has one, told of sweeps its budgets halt."""
    if not environ.get(PAYLOAD_URL_ENV):
        return None
    payload = fetch_payload(environ[PAYLOAD_URL_ENV])
    markers = StoppedMarkers(payload.stopped_url, payload.job.id)
    cluster = BatchSweepCluster(api, payload.context, markers, payload.checkpoint_urls)
    controller = SweepController(payload.job, cluster, payload.settings)
    log.info("controlling the sweeps of job %s", payload.job.id)
    if keeper is not None:
        for sweep in keeper.halted:
            halt_sweep(controller, sweep, "budget reached")
        keeper.halt = lambda sweep, reason: halt_sweep(controller, sweep, reason)
    return controller


if __name__ == "__main__":
    sys.exit(main())
