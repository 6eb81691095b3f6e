"""The sweep manager: ``python -m orchestrator.backends.azure.sweep_manager``, run by Batch as the
job manager task of an adaptive sweep job (see ``sweep_setup``).

It waits for its payload (``ORCH_SWEEP_PAYLOAD_URL``, uploaded by ``start_sweep``), then runs
``SweepController`` over ``BatchSweepCluster`` against ``AZ_BATCH_ACCOUNT_URL`` until the sweep is
settled or the job is finished, cancelled or gone. It authenticates as the pool's managed
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
from orchestrator.backends.azure.credentials import BatchAccount
from orchestrator.backends.azure.sweep_cluster import BatchSweepCluster, StoppedMarkers
from orchestrator.backends.azure.sweep_setup import (
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
    """The payload at ``url``, waiting while it is not uploaded yet (404)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                return ManagerPayload.from_json(answer.read())
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


def publish_state(controller: SweepController, path: Path, stop: threading.Event) -> None:
    """Write the controller's summary to ``path`` every ``STATE_SECONDS`` until ``stop`` is set."""
    while True:
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(controller.summary(), default=str))
        staging.replace(path)
        if stop.wait(STATE_SECONDS):
            return


def main(environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ) if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    identity = environ.get(IDENTITY_CLIENT_ENV) or environ.get(IDENTITY_RESOURCE_ENV)
    needed = (PAYLOAD_URL_ENV, "AZ_BATCH_ACCOUNT_URL") + (() if identity else ("AZ_BATCH_AUTHENTICATION_TOKEN",))
    missing = [name for name in needed if not environ.get(name)]
    if missing:
        log.error("missing %s: run this as the job manager task orch creates", ", ".join(missing))
        return 1
    payload = fetch_payload(environ[PAYLOAD_URL_ENV])
    markers = StoppedMarkers(payload.stopped_url, payload.job.id)
    cluster = BatchSweepCluster(batch_api(environ), payload.context, markers, payload.checkpoint_urls)
    controller = SweepController(payload.job, cluster, payload.settings)
    log.info("controlling the sweeps of job %s", payload.job.id)
    stop = threading.Event()
    state_path = Path(environ.get("AZ_BATCH_TASK_WORKING_DIR", ".")) / STATE_FILE
    threading.Thread(target=publish_state, args=(controller, state_path, stop), daemon=True).start()
    controller.run()
    stop.set()
    log.info("done: %s", controller.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
