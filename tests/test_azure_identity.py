"""The sweep controller's way to Batch on an account created today: the pool's managed identity.

A default account (no task authentication tokens) over HTTPS: the pool is created with a
user-assigned identity through Resource Manager (Batch's data plane cannot give pools
identities), the controller's job manager task gets a Batch token for that identity from its
node's identity endpoint (azure-identity's ManagedIdentityCredential), and the adaptive sweep runs;
without an identity, the sweep is refused at planning, before anything is created."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError

from orchestrator.backends.azure import naming
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.model import JobRef, TaskState
from tests.batch_service import (
    BatchService,
    ServiceSettings,
)
from tests.support.azure_stack import azure_services, config_folder
from tests.support.azurite import Azurite

pytestmark = pytest.mark.slow
IDENTITY = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml/providers/" \
           "Microsoft.ManagedIdentity/userAssignedIdentities/orch-controller"
CLIENT = "4b1f5c9e-0000-4000-8000-00000000c1a0"
OPERATOR = "0e7a0c55-0000-4000-8000-0000000000aa"
STEPS_SH = """#!/bin/sh
for step in 1 2 3 4 5 6; do
  echo "{\\"step\\": $step, \\"acc\\": $1}" >> "$ORCH_METRICS_FILE"
  sleep 0.4
done
"""
SWEEP = """id: {job}
pool: {pool}
workdir: code
tasks:
  - id: trial
    command: sh steps.sh {{{{quality}}}}
    search_space: {{quality: {{choice: [0.9, 0.2, 0.85, 0.1]}}}}
    objective: {{metric: acc, goal: maximize}}
    limits: {{max_concurrent_trials: 2}}
    early_termination: {{policy: bandit, slack_amount: 0.2, delay_evaluation: 2}}
"""


def pool_file(pool_id: str, identity: bool) -> str:
    block = f"identity: {{resource_id: '{IDENTITY}', client_id: {CLIENT}}}, " if identity else ""
    return (f"id: {pool_id}\nbackend: azure\nnodes: 2\nenv: {{ORCH_PYTHON: '{sys.executable}'}}\n"
            f"azure: {{{block}vm_size: D2s_v5}}\n")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    settings = ServiceSettings(identities={IDENTITY: CLIENT}, operator_identity=OPERATOR)  # a default account
    with azure_services(tmp_path_factory, settings, identity_endpoint=True) as both:
        yield both


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite]) -> Path:
    return config_folder(tmp_path_factory, services, {
        "code/steps.sh": STEPS_SH, "pool.yaml": pool_file("idpool", identity=True),
        "plain.yaml": pool_file("plainpool", identity=False), "sweep.yaml": SWEEP.format(job="idsweep", pool="idpool"),
        "refused.yaml": SWEEP.format(job="refused", pool="plainpool")}, resource_manager=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orch-home")


@pytest.fixture(autouse=True)
def orch_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_HOME", str(home))
    return home


def orch(config: Path, *args: str, expect: int = 0) -> str:
    env = {**os.environ, "ORCH_CONFIG_DIR": str(config)}
    result = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                            cwd=config, env=env, timeout=300)
    assert result.returncode == expect, f"orch {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def token_from(url: str, *, metadata: bool = True, **params: str) -> tuple[int, dict[str, str]]:
    query = "&".join(f"{key}={value}" for key, value in {"api-version": "2018-02-01", **params}.items())
    request = urllib.request.Request(f"{url}/metadata/identity/oauth2/token?{query}",
                                     headers={"Metadata": "true"} if metadata else {})
    try:
        tls = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])  # the service's own CA
        with urllib.request.urlopen(request, timeout=10, context=tls) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Static:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 600)


def test_a_pool_with_an_identity_is_created_through_resource_manager(config: Path) -> None:
    orch(config, "pool", "create")  # signs in to Resource Manager as this machine's identity
    backend = AzureBackend(config)
    info = backend.get_pool("idpool")
    assert info is not None and info.state == "ready" and len(info.nodes) == 2
    raw = backend.accounts.for_pool("idpool").batch.client.get_pool("idpool")
    assert [(i.resource_id, i.client_id) for i in raw.identity.user_assigned_identities] == [(IDENTITY, CLIENT)]


def test_a_node_gets_tokens_for_its_pools_identity_only(services: tuple[BatchService, Azurite], config: Path) -> None:
    batch, _ = services
    node = AzureBackend(config).get_pool("idpool").nodes[0].id
    endpoint = f"{batch.url}/nodes/idpool/{node}"
    assert token_from(endpoint, metadata=False, resource="https://batch.core.windows.net/")[0] == 400
    assert token_from(endpoint, resource="https://batch.core.windows.net/", client_id=OPERATOR)[0] == 400
    status, body = token_from(endpoint, resource="https://batch.core.windows.net/")  # its only identity
    assert status == 200 and body["client_id"] == CLIENT and body["token_type"] == "Bearer"
    token = body["access_token"]
    client = BatchClient(batch.url, Static(token))
    assert client.get_pool("idpool").id == "idpool"  # the identity may use the account
    batch.settings.batch_role_identities = frozenset()  # … until it loses its role on the account
    try:
        with pytest.raises(HttpResponseError) as refused:
            client.get_pool("idpool")
        assert refused.value.status_code == 403
    finally:
        batch.settings.batch_role_identities = None
    _, management = token_from(batch.url, resource="https://management.azure.com/")
    with pytest.raises(HttpResponseError) as wrong:  # a Resource Manager token is not a Batch token
        BatchClient(batch.url, Static(management["access_token"])).get_pool("idpool")
    assert wrong.value.status_code == 401


def test_an_adaptive_sweep_runs_its_controller_as_the_pools_identity(config: Path) -> None:
    orch(config, "sweep", "sweep.yaml")
    backend = AzureBackend(config)
    api = backend.accounts.for_pool("idpool").batch
    manager = api.client.get_task("idsweep", naming.SWEEP_MANAGER_ID)
    env = {e.name: e.value for e in manager.environment_settings or []}
    assert env["ORCH_BATCH_IDENTITY_CLIENT_ID"] == CLIENT and "authenticationTokenSettings" not in manager.as_dict()
    deadline = time.monotonic() + 180
    while not (job := backend.get_job(JobRef("idpool", "idsweep"))).finished:
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.5)
    states = {t.id: t.state for t in backend.list_tasks(JobRef("idpool", "idsweep"))}
    assert states["trial-00000"] == TaskState.SUCCEEDED and TaskState.STOPPED in states.values()
    assert job.state == "completed" and len(states) == 4
    log = backend.read_file(JobRef("idpool", "idsweep"), naming.SWEEP_MANAGER_ID, "stderr")
    assert log is not None and b"Traceback" not in log.data and b"stopping trial-" in log.data


def test_a_sweep_that_needs_a_controller_is_refused_on_a_pool_without_identity(config: Path) -> None:
    orch(config, "pool", "create", "plain.yaml")
    out = orch(config, "sweep", "refused.yaml", expect=2)
    assert "azure.identity" in out and "task_authentication_tokens" in out
    assert AzureBackend(config).get_job(JobRef("plainpool", "refused")) is None  # nothing was created
