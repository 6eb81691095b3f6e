"""Who may read and act through `orch ui`: requests without the token, with a wrong one, from
another site, with an unexpected Host, or acting on a read-only dashboard are refused; a confirmed
same-origin action with the token and the CSRF header goes through. Also the `orch ui` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import jobs, pools
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from orchestrator.ui.access import Access
from orchestrator.ui.state import Dashboard
from tests.support.memory_backend import MemoryBackend
from tests.support.ui_server import Served, serve


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    backend = MemoryBackend()
    monkeypatch.setattr(pools, "load_backend", lambda name, config_dir=None: backend)
    monkeypatch.setattr(jobs, "load_backend", lambda name, config_dir=None: backend)
    pools.create_pool(PoolSpec.model_validate({"id": "mem", "nodes": 1}), backend=backend)
    spec = JobSpec.model_validate({"id": "j", "pool": "mem", "workdir": None,
                                   "tasks": [{"id": "a", "command": "sleep 100"}]})
    submit_job(spec, config_dir=Path.cwd(), backend=backend)
    backend.jobs[JobRef("mem", "j")].states["a"] = TaskState.RUNNING
    return backend


@pytest.fixture
def acting(mem: MemoryBackend) -> Served:
    with serve(Dashboard(ttl=0.0), allow_actions=True) as running:
        yield running


def same_origin(served: Served, **extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Orch-CSRF": served.access.csrf, "Origin": served.base,
            "Sec-Fetch-Site": "same-origin", **extra}


def test_without_the_token_nothing_is_served(mem: MemoryBackend) -> None:
    with serve() as served:
        for path in ("/", "/jobs/j", "/api/overview", "/api/jobs/j/tasks/a/logs", "/static/common.js"):
            status, _, body = served.request("GET", path, auth=False)
            assert status == 401 and b"token" in body, path
        status, _, _ = served.request("GET", "/api/overview", auth=False, headers={"Authorization": "Bearer guess"})
        assert status == 401
        status, _, _ = served.request("GET", "/?token=guess", auth=False)
        assert status == 403


def test_the_token_in_the_url_becomes_a_strict_cookie(mem: MemoryBackend) -> None:
    with serve() as served:
        status, headers, _ = served.request("GET", f"/jobs/j?token={served.access.token}&x=1", auth=False)
        assert status == 303 and headers["location"] == "/jobs/j?x=1"
        cookie = headers["set-cookie"]
        assert cookie.startswith(f"orch_ui_{served.access.port}={served.access.token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, body = served.request("GET", "/api/overview", auth=False,
                                         headers={"Cookie": cookie.split(";")[0]})
        assert status == 200 and b'"mem"' in body


def test_an_unexpected_host_is_refused_even_with_the_token(mem: MemoryBackend) -> None:
    with serve() as served:  # a DNS-rebinding page reaches 127.0.0.1 under its own name
        status, _, body = served.request("GET", "/api/overview", headers={"Host": f"evil.example:{served.access.port}"})
        assert status == 400 and b"Host" in body
        assert served.request("GET", "/api/overview", headers={"Host": f"localhost:{served.access.port}"})[0] == 200


def test_a_read_only_dashboard_refuses_actions(mem: MemoryBackend) -> None:
    with serve() as served:
        status, _, body = served.request("POST", "/api/jobs/j/cancel", body={"confirm": "j"},
                                         headers=same_origin(served))
        assert status == 403 and b"read-only" in body
    assert ("cancel_job", "j") not in mem.calls


@pytest.mark.parametrize("change, status", [
    ({"X-Orch-CSRF": ""}, 403),
    ({"X-Orch-CSRF": "0" * 64}, 403),
    ({"Origin": "http://evil.example"}, 403),
    ({"Origin": "http://127.0.0.1:1"}, 403),
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
])
def test_cross_site_and_forged_actions_are_refused(mem: MemoryBackend, acting: Served, change: dict[str, str],
                                                   status: int) -> None:
    got, _, _ = acting.request("POST", "/api/jobs/j/cancel", body={"confirm": "j"},
                               headers={**same_origin(acting), **change})
    assert got == status
    assert ("cancel_job", "j") not in mem.calls


def test_an_action_needs_a_confirmation_naming_its_target(mem: MemoryBackend, acting: Served) -> None:
    for body in ({}, {"confirm": "other"}, b"not json", b"[1]"):
        status, _, _ = acting.request("POST", "/api/jobs/j/cancel", body=body, headers=same_origin(acting))
        assert status == 400
    assert acting.request("GET", "/api/jobs/j/cancel")[0] == 405
    assert ("cancel_job", "j") not in mem.calls


def test_a_confirmed_same_origin_action_goes_through(mem: MemoryBackend, acting: Served) -> None:
    status, _, body = acting.request("POST", "/api/jobs/j/cancel", body={"confirm": "j"}, headers=same_origin(acting))
    assert status == 200, body
    assert ("cancel_job", "j") in mem.calls
    assert acting.get_json("/api/jobs/j")["task_counts"] == {"cancelled": 1}
    status, _, body = acting.request("POST", "/api/pools/mem/delete", body={"confirm": "mem", "force": True},
                                     headers=same_origin(acting))
    assert status == 200, body
    assert pool_records.load("mem") is None
    assert acting.get_json("/api/overview") == {"pools": [], "jobs": [], "unreachable": {}}


def test_the_page_holds_a_derived_csrf_value_never_the_token() -> None:
    access = Access(token="t" * 32, port=9)
    assert access.csrf != access.token and access.token not in access.csrf
    assert Access(token="u" * 32, port=9).csrf != access.csrf
    assert access.cookie_name == "orch_ui_9"


def test_orch_help_does_not_import_the_web_server() -> None:
    code = ("import sys; from orchestrator.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert not {'starlette', 'uvicorn', 'orchestrator.ui.server'} & set(sys.modules), sys.modules.keys()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ui " in run.stdout and "dashboard" in run.stdout


def test_orch_ui_prints_a_tokened_loopback_url_and_serves_it(tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "orchestrator", "ui", "--port", "0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("orch ui: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        port = int(url.split(":")[2].split("/")[0])
        token = url.split("token=")[1]
        assert len(token) >= 32
        served = Served(access=Access(token=token, port=port), dashboard=Dashboard())
        assert served.get_json("/api/overview") == {"pools": [], "jobs": [], "unreachable": {}}
        assert served.request("GET", "/api/overview", auth=False)[0] == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_taken_port_is_a_conflict_that_says_what_to_do(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "orchestrator", "ui", "--port", str(port)],
                             env={**os.environ, "ORCH_HOME": str(tmp_path)}, capture_output=True, text=True,
                             timeout=60)
    assert run.returncode == 5 and "in use" in run.stderr and "--port" in run.stderr
