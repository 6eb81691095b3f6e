"""A local pool keeps to itself: it signals only processes orch started (pid, start time and
executable recorded at launch), listens on 127.0.0.1 only, and keeps its files private."""
from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator import pools
from orchestrator.backends.ray import local_cluster
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.process_marks import START_TIME_SLACK, ProcessMark
from orchestrator.errors import SpecError
from orchestrator.model import TaskState
from orchestrator.records import pool_records
from orchestrator.records.home import orch_home, private_dir
from orchestrator.spec.loader import load_pool
from orchestrator.spec.pool import PoolSpec
from tests.support import jobs

REPO = Path(__file__).resolve().parent.parent


def _sleeper(*args: str) -> subprocess.Popen[bytes]:
    """A user's process in its own session (its process group id is its pid)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *args], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


# -- marks (fast) --------------------------------------------------------------------------
def test_a_mark_matches_only_the_very_process_it_was_taken_of() -> None:
    proc = _sleeper()
    try:
        mark = ProcessMark.of(psutil.Process(proc.pid))
        assert mark is not None and mark.live() is not None
        assert ProcessMark.load(mark.dump()) == mark
        reused = ProcessMark(mark.pid, mark.start_time - 3600, mark.exe)  # same pid, an earlier process
        assert reused.live() is None
        other_program = ProcessMark(mark.pid, mark.start_time, sys.executable)
        assert other_program.live() is None
        assert ProcessMark(mark.pid, mark.start_time, None).live() is not None, "exe unchecked when not recorded"
        quick = ProcessMark.of_pid(proc.pid)  # the agent's fast reading agrees with psutil's
        assert quick is not None and quick.exe is None and quick.live() is not None
        assert abs(quick.start_time - mark.start_time) <= START_TIME_SLACK
    finally:
        proc.kill()
        proc.wait()
    assert mark.live() is None, "an ended process matches nothing"
    assert ProcessMark.of_pid(proc.pid) is None, "a reaped process has no mark"


def test_a_recorded_task_process_is_found_and_killed_by_its_record(tmp_path: Path) -> None:
    from orchestrator.backends.ray import orphans

    proc, ended = _sleeper(), _sleeper()
    try:
        recorder = orphans.Recorder(tmp_path)
        note = recorder.started("j", "t", proc.pid)  # the first record makes the folder, 0700
        assert stat.S_IMODE((tmp_path / orphans.FOLDER).stat().st_mode) == 0o700
        assert stat.S_IMODE(recorder.path.stat().st_mode) == 0o600
        done = recorder.started("j", "u", ended.pid)
        ended.kill()
        ended.wait()
        recorder.ended(done)
        assert orphans.recorded(tmp_path) == [note]
        assert orphans.kill_recorded(tmp_path) == 1
        assert proc.wait(timeout=10) is not None and not recorder.path.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_record_is_compacted_to_its_live_entries_and_survives_a_cut_line(tmp_path: Path) -> None:
    from orchestrator.backends.ray import orphans

    live, short = _sleeper(), _sleeper()
    try:
        kept = orphans.Recorder(tmp_path, compact_bytes=300).started("j", "live", live.pid)
        recorder = orphans.Recorder(tmp_path, compact_bytes=300)  # a later agent with the same (reused) pid
        for _ in range(5):  # each start and end appends; past 300 bytes only the live entry is left
            mark = recorder.started("j", "short", short.pid)
            recorder.ended(mark)
        assert recorder.path.stat().st_size < 300
        assert orphans.recorded(tmp_path) == [kept]
        with open(recorder.path, "ab") as handle:  # an agent killed mid-write leaves a cut line
            handle.write(b'["+", [1, 2')
        assert orphans.recorded(tmp_path) == [kept]
        assert orphans.kill_recorded(tmp_path) == 1 and live.wait(timeout=10) is not None
        assert orphans.recorded(tmp_path) == []
    finally:
        for proc in (live, short):
            proc.kill()
            proc.wait()


def test_records_of_the_earlier_layout_are_honoured(tmp_path: Path) -> None:
    import json

    from orchestrator.backends.ray import orphans
    from orchestrator.backends.ray.process_marks import ProcessMark

    proc = _sleeper()
    try:
        mark = ProcessMark.of_pid(proc.pid)
        assert mark is not None
        folder = tmp_path / orphans.FOLDER
        folder.mkdir()
        (folder / f"j__t__{proc.pid}.json").write_text(json.dumps({"mark": mark.dump(), "job": "j", "task": "t"}))
        (folder / "junk.json").write_text("[1, 2")
        assert orphans.kill_recorded(tmp_path) == 1 and proc.wait(timeout=10) is not None
        assert not list(folder.iterdir())
    finally:
        proc.kill()
        proc.wait()


def test_waiting_for_a_task_process_with_a_timeout() -> None:
    from orchestrator.backends.ray import process_tree

    sleeper = _sleeper()
    try:
        assert process_tree.wait_for(sleeper, 0.05) is None  # still running
    finally:
        sleeper.kill()
    assert process_tree.wait_for(sleeper, 10.0) == -9
    quick = subprocess.Popen(["sh", "-c", "exit 3"])
    assert process_tree.wait_for(quick, 10.0) == 3 and process_tree.wait_for(quick, 0.0) == 3  # reaped: still 3


@pytest.mark.parametrize("raw", [None, 12, "12", [1, 2], ["x", 1.0, "/bin/sh"], {"pid": 1}])
def test_an_unreadable_mark_proves_nothing(raw: object) -> None:
    assert ProcessMark.load(raw) is None


def test_a_record_of_process_groups_signals_nothing() -> None:
    """Records from before marks named process groups: they prove nothing and are ignored."""
    record = ClusterRecord(pool_id="p", started_cluster=True)
    assert ClusterRecord.of(pool_records.PoolRecord(
        id="p", backend="ray", spec={"id": "p"}, created_at=0.0, state="ready",
        engine={"started_cluster": True, "process_groups": [os.getpid()]})).node_marks() == []
    assert record.node_marks() == []


def test_private_dir_makes_every_missing_folder_0700(tmp_path: Path) -> None:
    target = private_dir(tmp_path / "a" / "b" / "c")
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    assert stat.S_IMODE(private_dir(loose).stat().st_mode) == 0o700


def test_expose_is_refused_with_an_address(tmp_path: Path) -> None:
    spec = tmp_path / "pool.yaml"
    spec.write_text("id: p\nray:\n  address: 10.0.0.4:6379\n  expose: true\n")
    with pytest.raises(SpecError, match="expose"):
        load_pool(spec)


# -- a real pool (slow) --------------------------------------------------------------------
@pytest.fixture
def safe_pool() -> Iterator[str]:
    pools.create_pool(PoolSpec.model_validate({"id": "safepool", "nodes": 2, "cpus_per_node": 1}))
    try:
        yield "safepool"
    finally:
        if pool_records.load("safepool") is not None:
            pools.delete_pool("safepool", force=True)


@pytest.mark.slow
def test_pool_delete_spares_decoys_with_reused_ids_and_names(safe_pool: str) -> None:
    cluster = ClusterRecord.of(pool_records.require(safe_pool))
    assert cluster.temp_dir
    group_decoy = _sleeper()                                   # a process group id that could be reused
    name_decoy = _sleeper(os.path.join(cluster.temp_dir, "x"))  # a user's command naming the pool's temp dir
    try:
        forged = ProcessMark(group_decoy.pid, psutil.Process(group_decoy.pid).create_time() - 600,
                             psutil.Process(group_decoy.pid).exe())
        engine = dict(pool_records.require(safe_pool).engine)
        engine["nodes"] = [*engine["nodes"], [forged.dump()]]  # as if the recorded process died, its pid reused
        engine["process_groups"] = [group_decoy.pid]  # and a record from before marks
        pool_records.save_engine(safe_pool, engine)
        done = subprocess.run([sys.executable, "-m", "orchestrator", "pool", "delete", safe_pool, "--force", "-y"],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert group_decoy.poll() is None and name_decoy.poll() is None, "pool delete signalled a user's process"
        assert local_cluster.cluster_processes(cluster.node_marks()) == []
        assert not Path(cluster.temp_dir).parent.exists(), "the pool's temp folder is removed"
    finally:
        for decoy in (group_decoy, name_decoy):
            decoy.kill()
            decoy.wait()


@pytest.mark.slow
def test_a_local_pool_listens_on_loopback_only_and_keeps_files_private(safe_pool: str) -> None:
    jobs.submit(safe_pool, {"id": "talk", "tasks": [{"id": "t", "command": "echo secret-output; sleep 30"}]})
    jobs.wait_state(safe_pool, "talk", "t", TaskState.RUNNING)
    cluster = ClusterRecord.of(pool_records.require(safe_pool))
    listening = []
    for proc in local_cluster.cluster_processes(cluster.node_marks()):
        try:
            listening += [(proc.name(), c.laddr) for c in proc.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    assert listening, "the pool's servers were found"
    exposed = [(name, addr) for name, addr in listening if not _loopback(addr.ip)]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    state = pool_records.pool_state_dir(safe_pool)
    for folder in (orch_home() / "pools", state, Path(cluster.temp_dir or "").parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    deadline = time.monotonic() + 30
    outputs: list[Path] = []
    while not outputs and time.monotonic() < deadline:
        outputs = [p for p in (state / "nodes").rglob("stdout.txt") if "talk" in str(p)]
        time.sleep(0.2)
    assert outputs
    for path in outputs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
    assert stat.S_IMODE((state / "auth_token").stat().st_mode) == 0o600
