"""Azure pool specs, credentials (secrets never shown), and the pure mappings to Batch bodies."""
from __future__ import annotations

import io
import json
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.backends.azure import credentials as creds
from orchestrator.backends.azure import naming, pool_model, task_model
from orchestrator.backends.azure.retries import RetryPolicy, to_orch_error, with_retries
from orchestrator.cli.root import cli
from orchestrator.errors import (
    AuthError,
    BackendError,
    ConflictError,
    NotFoundError,
    SpecError,
    UnsupportedError,
)
from orchestrator.model import Resources, TaskLaunch
from orchestrator.spec.job import DistributedSpec
from orchestrator.spec.loader import load_pool
from orchestrator.spec.pool import PoolSpec
from tests.support.formulas import targets_after

SECRET = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
CREDENTIALS = f"""batch:
  account: orchtest
  url: http://127.0.0.1:9
  key: {SECRET}
storage:
  connection_string: "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={SECRET};BlobEndpoint=http://x/dev;"
registries:
  acr: {{username: bot, password: {SECRET}}}
"""


def pool_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    return path


def azure_pool(**azure: object) -> PoolSpec:
    return PoolSpec.model_validate({"id": "p", "backend": "azure", "nodes": 2, "azure": {"vm_size": "D4s_v5", **azure}})


def test_azure_pool_takes_cpus_and_gpus_from_its_vm_size(tmp_path: Path) -> None:
    spec = load_pool(pool_file(tmp_path, "id: g\nbackend: azure\nnodes: {dedicated: 1, low_priority: 3}\n"
                                          "azure: {vm_size: nc24ads_a100_v4}\n"))
    assert (spec.azure.vm_size, spec.cpus_per_node, spec.gpus_per_node) == ("Standard_NC24ads_A100_v4", 24.0, 1)
    assert (spec.nodes.dedicated, spec.nodes.low_priority, spec.slots_per_node) == (1, 3, 24)
    explicit = azure_pool()
    assert explicit.model_copy(update={"max_tasks_per_node": 2}).slots_per_node == 2


@pytest.mark.parametrize("text, expected", [
    ("id: a\nbackend: azure\n", "pool.yaml:1:1: backend azure needs an 'azure:' block"),
    ("id: a\nazure: {vm_size: D2s_v5}\n", "the 'azure:' block applies only to backend: azure"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v9\n", "pool.yaml:4:3: azure.vm_size: unknown VM size 'D2s_v9'"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  autoscale: {formula: x, scenario: pending_tasks}\n",
     "azure.autoscale: autoscale takes either a formula or a scenario"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  autoscale: {scenario: pending_tasks}\n",
     "pending_tasks needs max_nodes"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  storage_container: Bad_Name\n",
     "'Bad_Name' is not a blob container name"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  node_fil: pack\n", "did you mean 'node_fill'?"),
    ("id: a\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  job_lifetime: 3650d\n", "job_lifetime must be between 1h and 7d"),
])
def test_azure_pool_errors_name_their_place(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpecError) as raised:
        load_pool(pool_file(tmp_path, text))
    assert expected in str(raised.value)


def test_credentials_file_keeps_secrets_hidden(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text(CREDENTIALS)
    loaded = creds.load(tmp_path, env={})
    assert loaded.source == str(path.resolve())
    assert loaded.batch.key is not None and loaded.batch.key.get_secret_value() == SECRET
    shown = repr(loaded) + str(loaded) + loaded.model_dump_json()
    assert SECRET not in shown and "**********" in shown


@pytest.mark.parametrize("batch_block", [
    f"batch: {{account: ab, url: http://h, key: {SECRET}}}\n",  # account too short
    f"batch: {{account: abc, url: http://h, key: {SECRET}, aad: true}}\n",  # two ways to authenticate
    f"batch: {{account: abc, url: 'not a url {SECRET}', key: x}}\n",
    f"batch: {{account: abc, url: http://h, password: {SECRET}}}\n",  # unknown key
])
def test_credentials_errors_never_show_a_secret(tmp_path: Path, batch_block: str) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text(batch_block)
    with pytest.raises(SpecError) as raised:
        creds.load_file(path)
    assert "credentials.yaml:1" in str(raised.value) and SECRET not in str(raised.value)


def test_credentials_come_from_the_first_source_that_has_them(tmp_path: Path) -> None:
    home, config, explicit = (tmp_path / name for name in ("home", "config", "explicit"))
    for folder in (home, config, explicit):
        folder.mkdir()
        (folder / "credentials.yaml").write_text(CREDENTIALS.replace("orchtest", f"acct{folder.name}"))
    env = {"ORCH_HOME": str(home)}
    assert creds.load(None, env).batch.account == "accthome"
    assert creds.load(config, env).batch.account == "acctconfig"
    env["ORCH_CREDENTIALS_FILE"] = str(explicit / "credentials.yaml")
    assert creds.load(config, env).batch.account == "acctexplicit"
    environment = {"ORCH_HOME": str(tmp_path / "none"), "ORCH_BATCH_ACCOUNT": "fromenv", "ORCH_BATCH_URL": "http://h",
                   "ORCH_BATCH_KEY": SECRET, "ORCH_STORAGE_ACCOUNT": "store", "ORCH_STORAGE_SAS": "sv=1&sig=" + SECRET}
    loaded = creds.load(None, environment)
    assert (loaded.batch.account, loaded.storage.account, loaded.source) == ("fromenv", "store", "environment")
    with pytest.raises(AuthError) as missing:
        creds.load(None, {"ORCH_HOME": str(tmp_path / "none")})
    assert missing.value.exit_code == 8 and "ORCH_BATCH_ACCOUNT" in str(missing.value)
    with pytest.raises(AuthError) as incomplete:
        creds.load(None, {**environment, "ORCH_BATCH_AAD": "1"})
    assert SECRET not in str(incomplete.value)


def test_pool_body_maps_image_slots_fill_containers_and_start_task() -> None:
    credentials = creds.Credentials.model_validate(
        {"batch": {"account": "abc", "url": "http://h", "key": SECRET},
         "registries": {"acr": {"username": "bot", "password": SECRET}}})
    spec = PoolSpec.model_validate({
        "id": "p", "backend": "azure", "nodes": {"dedicated": 1, "low_priority": 2}, "max_tasks_per_node": 3,
        "env": {"A": "1"}, "start_task": "apt-get install -y x",
        "azure": {"vm_size": "NC24ads_A100_v4", "node_fill": "pack",
                  "container": {"images": ["r.io/t:1"], "registries": [{"server": "r.io", "credentials": "acr"}]}}})
    body = pool_model.pool_create_options(spec, credentials).as_dict()
    assert (body["vmSize"], body["taskSlotsPerNode"], body["taskSchedulingPolicy"]) == (
        "Standard_NC24ads_A100_v4", 3, {"nodeFillType": "pack"})
    assert body["enableAutoScale"] and body["enableInterNodeCommunication"]  # autostop (a default idle_timeout)
    assert targets_after(body["autoScaleFormula"], {}) == (1, 2)
    vm = body["virtualMachineConfiguration"]
    assert vm["imageReference"]["offer"] == "ubuntu-hpc" and vm["nodeAgentSKUId"] == "batch.node.ubuntu 24.04"
    assert vm["containerConfiguration"]["containerImageNames"] == ["r.io/t:1"]
    assert vm["containerConfiguration"]["containerRegistries"][0]["password"] == SECRET
    assert body["startTask"]["commandLine"] == "/bin/sh -c 'apt-get install -y x'"
    assert body["startTask"]["userIdentity"]["autoUser"]["elevationLevel"] == "admin"
    assert {"name": "A", "value": "1"} in body["startTask"]["environmentSettings"]
    cpu = azure_pool().model_copy(update={"nodes": azure_pool().nodes.model_copy(update={"dedicated": 1})})
    cpu_vm = pool_model.vm_configuration(pool_model.azure_options(cpu), credentials).as_dict()
    assert cpu_vm["imageReference"]["offer"] == "ubuntu-24_04-lts" and not pool_model.inter_node_communication(cpu)
    with pytest.raises(AuthError) as unknown:
        pool_model.registries(spec.azure.container.model_copy(update={"registries": [
            spec.azure.container.registries[0].model_copy(update={"credentials": "other"})]}), credentials)
    assert "'other'" in str(unknown.value)


def test_pending_tasks_autoscale_formula_bounds_nodes_by_slots() -> None:
    spec = azure_pool(autoscale={"scenario": "pending_tasks", "min_nodes": 1, "max_nodes": 5})
    spec = spec.model_copy(update={"max_tasks_per_node": 4})
    formula = pool_model.autoscale_formula(spec)
    assert formula is not None

    def nodes_for(pending: int) -> int:
        return targets_after(formula, {"$PendingTasks": pending})[0]

    assert [nodes_for(n) for n in (0, 4, 5, 9, 100)] == [1, 1, 2, 3, 5]
    body = pool_model.pool_create_options(spec, creds.Credentials.model_validate(
        {"batch": {"account": "abc", "url": "http://h", "aad": True}})).as_dict()
    assert body["enableAutoScale"] and "targetDedicatedNodes" not in body


def test_spot_autoscale_covers_preempted_nodes_with_dedicated_ones_within_the_nodes_wanted() -> None:
    spec = azure_pool(autoscale={"scenario": "pending_tasks", "min_nodes": 0, "max_nodes": 4, "low_priority": True})
    formula = pool_model.autoscale_formula(spec)
    assert formula is not None and "$PreemptedNodeCount.GetSample(180 * TimeInterval_Second)" in formula

    def targets(pending: int, preempted: int, since: float = 600.0) -> tuple[int, int]:
        dedicated, spot = targets_after(formula, {"$PendingTasks": pending, "$PreemptedNodeCount": preempted},
                                        changed={"$PreemptedNodeCount": (0, since)})
        return spot, dedicated

    slots = spec.slots_per_node
    assert targets(3 * slots, 0) == (3, 0)
    assert targets(3 * slots, 2) == (3, 2)  # Spot target kept (Batch seeks it); two dedicated cover the gap
    assert targets(3 * slots, 2, since=60) == (3, 0)  # preempted for a minute only: Spot capacity may return
    assert targets(1 * slots, 3) == (1, 1)  # never more dedicated nodes than nodes wanted
    assert targets(0, 2) == (0, 0)
    assert targets_after(formula, {}, samples=False) == (0, 0)  # a new pool: no samples, no dedicated nodes


def test_a_sweep_that_needs_a_controller_is_refused_on_a_pool_that_cannot_reach_batch(tmp_path: Path) -> None:
    from orchestrator.plan import make_plan
    from orchestrator.spec.job import JobSpec

    job = JobSpec.model_validate({"id": "s", "pool": "p", "workdir": None, "tasks": [{
        "command": "echo {{x}}", "search_space": {"x": {"choice": [1, 2, 3]}},
        "limits": {"max_concurrent_trials": 1}}]})
    with pytest.raises(UnsupportedError) as refused:  # held-back trials need the controller too
        make_plan(job, azure_pool(), base_dir=tmp_path)
    assert refused.value.exit_code == 2 and "azure.identity" in (refused.value.hint or "")
    assert "task_authentication_tokens" in (refused.value.hint or "")
    identity = {"resource_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
                               "userAssignedIdentities/orch", "client_id": "11111111-2222-3333-4444-555555555555"}
    assert make_plan(job, azure_pool(identity=identity), base_dir=tmp_path).controller is not None
    assert make_plan(job, azure_pool(task_authentication_tokens=True), base_dir=tmp_path).controller is not None
    assert make_plan(job, azure_pool(max_parallel_tasks=True), base_dir=tmp_path).controller is None
    with pytest.raises(ValueError, match="is not a user-assigned identity"):
        azure_pool(identity={"resource_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/x"})


def test_a_pool_with_an_identity_translates_to_resource_manager_and_back_unchanged() -> None:
    from orchestrator.backends.azure import arm_pools
    from tests.batch_service.arm import data_plane_body

    identity = {"resource_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/"
                               "userAssignedIdentities/orch", "client_id": "11111111-2222-3333-4444-555555555555"}
    credentials = creds.Credentials.model_validate({"batch": {"account": "abc", "url": "http://h", "aad": True},
                                                    "registries": {"r": {"username": "u", "password": "p"}}})
    for spec in (azure_pool(identity=identity, container={"images": ["r.io/x:1"], "registries": [
                     {"server": "r.io", "credentials": "r"}]}).model_copy(update={"start_task": None}),
                 PoolSpec.model_validate({"id": "p", "backend": "azure", "start_task": "apt-get install -y x",
                                          "azure": {"vm_size": "D4s_v5", "identity": identity, "node_fill": "pack",
                                                    "autoscale": {"scenario": "pending_tasks", "max_nodes": 3}}})):
        body = pool_model.pool_create_options(spec, credentials).as_dict()
        arm = arm_pools.arm_body(body, spec.azure.identity)
        assert arm["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity["resource_id"]: {}}}
        back = data_plane_body(body["id"], arm["properties"])
        assert back == {key: value for key, value in body.items() if key != "id"} | {"id": body["id"]}


def launch(**fields: object) -> TaskLaunch:
    return TaskLaunch(**{"id": "t1", "command": "echo hi", **fields})  # type: ignore[arg-type]


def context(**fields: object) -> task_model.TaskContext:
    values = {"pool_id": "p", "job_id": "j", "vm_size": "ND96asr_v4", "cpus_per_node": 4.0, "gpus_per_node": 8,
              "slots_per_node": 4, "pool_env": {"FROM_POOL": "1"}, "workdir_url": "http://blob/w.zip?sig=x",
              "outputs_url": "http://blob/c?sig=y", "output_condition": "tasksuccess", **fields}
    return task_model.TaskContext(**values)  # type: ignore[arg-type]


def test_task_body_maps_command_env_limits_dependencies_and_outputs() -> None:
    task = launch(env={"LR": "0.1"}, resources=Resources(cpus=2), max_retries=2, max_wall_time=90.0,
                  depends_on=("a", "b"), output_files=("model/*.pt", "log.txt"))
    body = task_model.task_options(task, context(), naming.task_prefix("j", "t1")).as_dict()
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env == {"FROM_POOL": "1", "LR": "0.1", "ORCH_POOL_ID": "p", "ORCH_JOB_ID": "j", "ORCH_TASK_ID": "t1"}
    assert body["constraints"] == {"maxTaskRetryCount": 2, "maxWallClockTime": "PT01M30S"}
    assert (body["requiredSlots"], body["dependsOn"]) == (2, {"taskIds": ["a", "b"]})
    assert body["resourceFiles"] == [{"httpUrl": "http://blob/w.zip?sig=x", "filePath": task_model.WORKDIR_ZIP}]
    outputs = {(o["filePattern"], o["destination"]["container"]["path"], o["uploadOptions"]["uploadCondition"])
               for o in body["outputFiles"]}
    assert outputs == {("../std*.txt", "jobs/j/t1", "taskcompletion"), ("metrics.jsonl*", "jobs/j/t1", "taskcompletion"),
                       ("model/*.pt", "jobs/j/t1/outputs", "tasksuccess"),
                       ("log.txt", "jobs/j/t1/outputs/log.txt", "tasksuccess")}
    argv = shlex.split(body["commandLine"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[2].endswith("exec /bin/sh -c 'echo hi'")


def test_task_script_sets_the_orch_contract_and_runs_list_commands_quoted(tmp_path: Path) -> None:
    task = launch(command=("printf", "%s|%s\n", "two words", "$HOME"))
    line = task_model.task_options(task, context(workdir_url=None), "x/").command_line
    work = tmp_path / "wd"
    work.mkdir()
    env = {"AZ_BATCH_TASK_WORKING_DIR": str(work), "AZ_BATCH_TASK_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    script = "echo $ORCH_TASK_DIR $ORCH_METRICS_FILE $ORCH_TASK_ATTEMPT; " + shlex.split(line)[2].split("; exec ")[-1]
    for attempt in (1, 2):
        out = subprocess.run(shlex.split(line), env=env, capture_output=True, text=True, check=True).stdout
        assert out == "two words|$HOME\n"
        probe = subprocess.run(["/bin/sh", "-c", "; ".join(task_model._prelude(None)) + "; " + script.split(";")[0]],
                               env=env, capture_output=True, text=True, check=True).stdout.split()
        assert probe == [str(work), f"{work}/metrics.jsonl", str(attempt * 2)]


def test_tasks_run_under_the_checkpoint_helper_and_without_it_where_python_is_missing(tmp_path: Path) -> None:
    ctx = context(workdir_url=None, checkpoint_helper_url="http://blob/inputs/abc.py?sig=r")
    body = task_model.task_options(launch(command="echo ran in $PWD"), ctx, "x/",
                                   checkpoint_url="http://blob/c/checkpoints/j/t1/checkpoint.zip?sig=w").as_dict()
    assert {"httpUrl": "http://blob/inputs/abc.py?sig=r", "filePath": task_model.CHECKPOINT_HELPER} \
        in body["resourceFiles"]
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env[task_model.CHECKPOINT_URL_ENV].endswith("?sig=w") and "sig=w" not in body["commandLine"]
    assert f'"$ORCH_TASK_DIR"/{task_model.CHECKPOINT_HELPER} run --' in body["commandLine"]
    work = tmp_path / "wd"
    work.mkdir()
    environ = {"AZ_BATCH_TASK_WORKING_DIR": str(work), "AZ_BATCH_TASK_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
               "ORCH_PYTHON": "/nowhere/python3", task_model.CHECKPOINT_URL_ENV: "http://x?sig=w"}
    done = subprocess.run(shlex.split(body["commandLine"]), env=environ, capture_output=True, text=True, check=True)
    assert done.stdout == f"ran in {work}\n" and "is neither restored nor saved" in done.stderr
    assert (tmp_path / "checkpoint").is_dir()  # ORCH_CHECKPOINT_DIR exists all the same


def test_multi_node_task_becomes_a_multi_instance_task_with_nccl_env() -> None:
    dist = DistributedSpec(launcher="mpi", nodes=2, processes_per_node=8)
    body = task_model.task_options(launch(distributed=dist), context(), "p/").as_dict()
    multi = body["multiInstanceSettings"]
    assert multi["numberOfInstances"] == 2 and body["requiredSlots"] == 1  # Batch requires 1 for multi-instance
    assert multi["commonResourceFiles"][0]["filePath"] == task_model.WORKDIR_ZIP and "resourceFiles" not in body
    assert "AZ_BATCH_TASK_SHARED_DIR" in multi["coordinationCommandLine"] and "mpirun" in multi["coordinationCommandLine"]
    assert "AZ_BATCH_HOST_LIST" in body["commandLine"] and "mpirun" in body["commandLine"]
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env["NCCL_IB_PCI_RELAXED_ORDERING"] == "1" and env["UCX_TLS"] == "rc"


def test_container_names_are_valid_and_distinct() -> None:
    assert naming.pool_container("gpu-pool") == "orch-gpu-pool"
    odd = [naming.pool_container(p) for p in ("GPU_pool", "gpu_pool", "x" * 64)]
    assert len(set(odd)) == 3 and all(3 <= len(n) <= 63 and n == n.lower() and "--" not in n for n in odd)
    assert naming.pool_container("any", "mine") == "mine"
    assert naming.task_file_path("metrics") == ("wd/metrics.jsonl", "metrics.jsonl")
    assert naming.task_file_path("outputs/m.pt") == ("wd/m.pt", "outputs/m.pt")


class FakeResponse:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: dict[str, object] | None = None) -> None:
        self.status_code, self.headers, self.reason = status, headers or {}, "x"
        self._body = body or {}
        self.request = None

    def read(self) -> bytes:
        return json.dumps(self._body).encode()

    def json(self) -> object:
        return self._body

    def text(self) -> str:
        return json.dumps(self._body)


def http_error(status: int, **kwargs: object) -> Exception:
    from azure.core.exceptions import HttpResponseError

    return HttpResponseError(message="failed sig=SECRETSIG&x", response=FakeResponse(status, **kwargs))  # type: ignore[arg-type]


def test_retries_honour_retry_after_and_map_errors_without_sas() -> None:
    waits: list[float] = []
    answers = [http_error(429, headers={"Retry-After": "7"}), http_error(503), "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = RetryPolicy(attempts=5, base=0.01, cap=1.0, sleep=waits.append)
    assert with_retries("reading", call, policy) == "ok"
    assert waits[0] == 7.0 and waits[1] <= 0.02
    with pytest.raises(BackendError) as exhausted:
        with_retries("reading", lambda: (_ for _ in ()).throw(http_error(500)), policy)
    assert "after 5 attempts" in str(exhausted.value) and "SECRETSIG" not in str(exhausted.value)
    kinds = {status: type(to_orch_error("x", http_error(status, body={"code": "C"}))) for status in (403, 404, 409, 400)}
    assert kinds == {403: AuthError, 404: NotFoundError, 409: ConflictError, 400: SpecError}
    assert getattr(to_orch_error("x", http_error(409, body={"code": "TaskExists"})), "code") == "TaskExists"


def test_pool_create_dry_run_prints_costs_and_calls_no_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_HOME", str(tmp_path / "home"))
    for name in ("ORCH_BATCH_ACCOUNT", "ORCH_BATCH_URL", "ORCH_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    pool_file(tmp_path, "id: cost\nbackend: azure\nnodes: {dedicated: 2, low_priority: 4}\n"
                        "azure: {vm_size: NC4as_T4_v3}\n")
    result = CliRunner().invoke(cli, ["--config-dir", str(tmp_path), "pool", "create", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1.05 dedicated (2 nodes) + 0.25 spot (4 nodes) = 1.30 USD/hour" in result.output
    assert "Spot VMs since March 2026" in result.output and "variable rate" in result.output
    assert "skypilot-catalog" in result.output and "East US" in result.output
    as_json = CliRunner().invoke(cli, ["--config-dir", str(tmp_path), "pool", "create", "--dry-run", "-o", "json"])
    assert json.loads(as_json.output)["estimates"]["nodes"]["total_per_hour"] == pytest.approx(1.302796)
    assert not (tmp_path / "home" / "pools").exists()


def test_credentials_example_template_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "templates" / "credentials.yaml.example"
    loaded = creds.load_file(example)
    assert loaded.registries["acr"].username == "myregistry"


def test_task_errors_and_snapshots_carry_no_secrets(tmp_path: Path) -> None:
    from azure.batch import models as m

    from orchestrator.backends.azure import job_ops
    from orchestrator.workdir import snapshot

    task = m.BatchTask({"id": "t", "state": "completed", "executionInfo": {
        "result": "failure", "retryCount": 0, "requeueCount": 0, "failureInfo": {
            "category": "usererror", "code": "BlobAccessDenied",
            "message": f"Downloading http://h/c/w.zip?sv=2024&sig={SECRET}&se=x failed with HTTP 403"}}})
    info = job_ops.task_info(task, "j", job_cancelled=False, stopped=set())
    assert info.error is not None and info.error.startswith("BlobAccessDenied") and SECRET not in info.error
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "credentials.yaml").write_text(CREDENTIALS)
    (tmp_path / "credentials.yaml").write_text(CREDENTIALS)
    data = snapshot(tmp_path).data
    with zipfile.ZipFile(io.BytesIO(data)) as kept:
        assert kept.namelist() == ["train.py"]


def test_new_verbs_have_help() -> None:
    runner = CliRunner()
    for args in (["data", "--help"], ["data", "ls", "--help"], ["data", "upload", "--help"],
                 ["data", "download", "--help"], ["down", "--help"], ["pool", "create", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert "--dry-run" in runner.invoke(cli, ["pool", "create", "--help"]).output
