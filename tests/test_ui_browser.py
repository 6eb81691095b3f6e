"""`orch ui` in a real browser (Debian's Chromium through Playwright).

On the real local Ray pool with a running sweep: the leaderboard fills and re-ranks as trials
finish, a task's log lines appear as it writes them, stopped trials are marked, charts render, one
click leads from a trial to its logs and parameters, the pool's price gives each trial a cost and the
best-over-spend chart, and the console stays free of errors; the page
is saved (as docs/ui.png for the README when ORCH_UPDATE_SCREENSHOT=1; else in the test's
temporary folder, so a test run leaves the checkout as it was). On an in-memory backend: a 20,000-task job loads and
scrolls, a job is cancelled from the page with a typed confirmation, and a priced pool's pages show
spend, burn rate, autostop, budget warnings and task costs (and an unpriced one says so).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator import jobs, pools
from orchestrator.cost import report
from orchestrator.model import JobRef, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from orchestrator.ui.state import Dashboard
from tests.support.browser import chromium
from tests.support.ledger_backend import LedgerBackend, PoolOverride
from tests.support.memory_backend import MemoryBackend
from tests.support.ui_server import serve

pytestmark = pytest.mark.slow
RAY_POOL_EXTRA = {"price_per_node_hour": 36.0}  # the shared pool of this module is priced (conftest.ray_pool)
REPO = Path(__file__).resolve().parent.parent
README_SCREENSHOT = REPO / "docs" / "ui.png"
STEPS_SH = """#!/bin/sh
# quality $1: one log line and one metric per step, 0.5 s apart
for step in 1 2 3 4 5 6 7 8; do
  echo "step $step of $ORCH_TASK_ID"
  echo "{\\"step\\": $step, \\"acc\\": $(awk "BEGIN { print $1 * (0.6 + 0.05 * $step) }")}" >> "$ORCH_METRICS_FILE"
  sleep 0.5
done
"""
SWEEP = """id: ui-sweep
pool: testpool
workdir: code
tasks:
  - id: trial
    command: sh steps.sh {{quality}}
    search_space: {quality: {choice: [0.5, 0.2, 0.9, 0.1]}}
    objective: {metric: acc, goal: maximize}
    limits: {max_concurrent_trials: 1}
    early_termination: {policy: bandit, slack_amount: 0.1, delay_evaluation: 2}
"""


def wait_for(check, timeout: float, what: str, pause: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def leaderboard(page) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(trial, state, value) of each leaderboard row, best first."""
    return page.eval_on_selector_all("#leaderboard tbody tr", """rows => rows.map(r => [r.dataset.trial,
        r.querySelector('.state').textContent, r.querySelector('td.value').textContent])""")


def test_a_live_sweep_on_a_ray_pool(pool_home: dict[str, str], tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "steps.sh").write_text(STEPS_SH)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    with serve(Dashboard(ttl=0.5)) as served, chromium(tmp_path / "profile") as browser:
        run = subprocess.run([sys.executable, "-m", "orchestrator", "--config-dir", str(tmp_path), "sweep",
                              str(tmp_path / "sweep.yaml")], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        board = browser.page()
        board.goto(served.login_url)  # the token becomes a cookie; the URL loses it
        assert "token" not in board.url
        board.wait_for_selector("#pools tbody tr[data-pool=testpool]")
        board.goto(f"{served.base}/sweeps/ui-sweep")
        logs = browser.page()
        logs.goto(f"{served.base}/jobs/ui-sweep/tasks/trial-00002")

        leaders: list[str] = []  # the leaderboard's top trial each time it changed
        first_log: list[str] = []  # trial-00002's log when its first line appeared

        def watch() -> bool:
            rows = leaderboard(board)
            if rows and rows[0][2] and (not leaders or leaders[-1] != rows[0][0]):
                leaders.append(rows[0][0])
            text = logs.inner_text("#log")
            if not first_log and "step 1 of trial-00002" in text:
                first_log.append(text)
            return (len(rows) == 4 and all(state not in ("pending", "running") for _, state, _ in rows)
                    and "step 8 of trial-00002" in text)

        wait_for(watch, 150, "every trial to end, and trial-00002's last log line", pause=0.1)
        assert first_log and "step 8 of trial-00002" not in first_log[0], "the log is followed live"
        rows = leaderboard(board)
        assert leaders[0] == "trial-00000" and leaders[-1] == "trial-00002", leaders  # re-ranked live
        assert rows[0][:2] == ["trial-00002", "succeeded"]
        stopped = {trial for trial, state, _ in rows if state == "stopped"}
        assert {"trial-00001", "trial-00003"} <= stopped
        assert board.locator("#leaderboard tbody tr.stopped").count() == len(stopped)
        wait_for(lambda: board.locator("#curves path.curve").count() == 4, 10, "four learning curves")
        assert board.locator("#curves [data-stopped]").count() == len(stopped)
        assert board.locator("#param-charts svg circle").count() == 4
        assert board.locator("#best svg path.curve").count() == 1
        wait_for(lambda: board.locator("#best-spend svg path.curve").count() == 1, 10, "the best-over-spend chart")
        assert board.locator("#best-spend svg circle.point").count() >= 1
        assert "best found after" in board.inner_text("#best-found") and "USD" in board.inner_text("#best-found")
        assert "COST" in board.inner_text("#leaderboard thead").upper()
        wait_for(lambda: "ended (succeeded)" in logs.inner_text("#log-status"), 20, "the log stream to end")
        shot = README_SCREENSHOT if os.environ.get("ORCH_UPDATE_SCREENSHOT") == "1" else tmp_path / "ui.png"
        board.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000, "a screenshot with something drawn"

        board.click("#leaderboard tbody tr[data-trial=trial-00002] td a")  # one click: logs and parameters
        board.wait_for_url("**/jobs/ui-sweep/tasks/trial-00002")
        wait_for(lambda: "0.9" in board.inner_text("#params"), 10, "the trial's parameters")
        wait_for(lambda: "step 8 of trial-00002" in board.inner_text("#log"), 10, "the trial's log")
        assert "succeeded" in board.inner_text("#attempts")  # the trial's one attempt, as the backend keeps it
    assert browser.errors == []


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    backend = MemoryBackend()
    monkeypatch.setattr(pools, "load_backend", lambda name, config_dir=None: backend)
    monkeypatch.setattr(jobs, "load_backend", lambda name, config_dir=None: backend)
    monkeypatch.setattr(report, "load_backend", lambda name, config_dir=None: backend)  # the pages' cost figures
    pools.create_pool(PoolSpec.model_validate({"id": "mem", "nodes": 2}), backend=backend)
    return backend


def test_a_20000_task_job_loads_and_scrolls(mem: MemoryBackend, tmp_path: Path) -> None:
    spec = JobSpec.model_validate({"id": "big", "pool": "mem", "workdir": None,
                                   "tasks": [{"id": f"t{i:05d}", "command": "true"} for i in range(20_000)]})
    submit_job(spec, config_dir=tmp_path, backend=mem)
    for i in range(0, 20_000, 9):
        mem.jobs[JobRef("mem", "big")].states[f"t{i:05d}"] = TaskState.FAILED
    with serve(Dashboard()) as served, chromium(tmp_path / "profile") as browser:
        page = browser.page()
        page.goto(served.login_url)
        start = time.perf_counter()
        page.goto(f"{served.base}/jobs/big")
        page.wait_for_selector("#tasks tbody tr:nth-child(100)")
        loaded = time.perf_counter() - start
        assert loaded < 2.0, f"the first page of 20,000 tasks took {loaded:.2f} s"
        assert "of 20,000 shown" in page.inner_text("#shown")
        for _ in range(5):
            page.mouse.wheel(0, 20_000)
            time.sleep(0.3)
        wait_for(lambda: page.locator("#tasks tbody tr").count() >= 400, 10, "more rows as the page scrolls")
        page.select_option("#state-filter", "failed")
        wait_for(lambda: page.inner_text("#shown").endswith(f"of {len(range(0, 20_000, 9)):,} shown (20,000 tasks in "
                                                              "the job)"), 10, "the failed tasks only")
        states = page.eval_on_selector_all("#tasks tbody tr", "rows => [...new Set(rows.map(r => r.dataset.state))]")
        assert states == ["failed"]
    assert browser.errors == []


def test_cancelling_from_the_page_takes_a_typed_confirmation(mem: MemoryBackend, tmp_path: Path) -> None:
    spec = JobSpec.model_validate({"id": "long", "pool": "mem", "workdir": None,
                                   "tasks": [{"id": "a", "command": "sleep 100"}]})
    submit_job(spec, config_dir=tmp_path, backend=mem)
    with serve(Dashboard(ttl=0.0), allow_actions=True) as served, chromium(tmp_path / "profile") as browser:
        page = browser.page()
        page.goto(served.login_url)
        page.goto(f"{served.base}/jobs/long")
        answers = iter(["lon", "long"])
        page.on("dialog", lambda dialog: dialog.accept(next(answers)))
        page.click("#cancel-job")
        wait_for(lambda: "not confirmed" in page.inner_text("#error"), 15, "a refusal of the wrong name")
        page.wait_for_timeout(3500)  # the page refreshes every 3 s: that must not wipe what the action said
        assert "not confirmed" in page.inner_text("#error")
        assert ("cancel_job", "long") not in mem.calls
        page.click("#cancel-job")
        wait_for(lambda: ("cancel_job", "long") in mem.calls, 15, "the job to be cancelled")
        wait_for(lambda: page.locator("#tasks tbody tr[data-state=cancelled]").count() == 1, 10, "the cancelled task")
    assert browser.errors == []


def test_a_priced_pool_shows_its_spend_and_an_unpriced_one_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    ledger = LedgerBackend()
    for module in (pools, jobs, report):
        monkeypatch.setattr(module, "load_backend", lambda name, config_dir=None: ledger)
    for pool_id, extra in (("paid", {"price_per_node_hour": 3600, "max_spend": 10, "idle_timeout": "30m"}),
                           ("free", {})):
        pools.create_pool(PoolSpec.model_validate({"id": pool_id, "nodes": 1, **extra}), backend=ledger)
        record = pool_records.require(pool_id)
        record.created_at -= 60  # before the spans
        pool_records.save(record)
    spec = JobSpec.model_validate({"id": "work", "pool": "paid", "workdir": None,
                                   "tasks": [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}]})
    submit_job(spec, config_dir=tmp_path, backend=ledger)
    now = time.time()
    ledger.end(JobRef("paid", "work"), "a", TaskState.SUCCEEDED, now - 1, usd=8.5)
    ledger.overrides["paid"] = PoolOverride(state="idle", stops_at=now + 600)
    ledger.spans["free"] = [replace(s, pool_id="free", price_per_hour=0.0, job_id=None) for s in ledger.spans["paid"]]
    with serve(Dashboard(ttl=0.5)) as served, chromium(tmp_path / "profile") as browser:
        page = browser.page()
        page.goto(served.login_url)
        row = page.locator("#pools tbody tr[data-pool=paid]")
        wait_for(lambda: "8.50 USD" in row.inner_text(), 10, "the pool's spend in the overview")
        assert "(in 10m)" in row.inner_text() or "(in 9m" in row.inner_text()
        assert "no price set: price_per_node_hour" in page.inner_text("#pools tbody tr[data-pool=free]")
        assert "(max_spend) has spent 8.50 USD of 10.00 USD (85%)" in page.inner_text("#budget-warnings")
        assert "8.50 USD" in page.inner_text("#jobs tbody tr[data-job=work]")
        page.goto(f"{served.base}/pools/paid")
        wait_for(lambda: "8.50 USD" in page.inner_text("#spend"), 10, "the pool page's spend")
        assert "stops itself at" in page.inner_text("#autostop") and "per node hour" in page.inner_text("#price")
        page.goto(f"{served.base}/jobs/work")
        wait_for(lambda: "8.50 USD" in page.inner_text("#tasks tbody tr[data-task=a]"), 10, "task a's cost")
        assert "0.00 USD" in page.inner_text("#tasks tbody tr[data-task=b]")
    assert browser.errors == []
