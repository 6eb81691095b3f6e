"""Shared fixtures: an isolated ORCH_HOME per test, one real 2-node local Ray pool per module, and
(from ``tests.support.batch_fixtures``) a local Batch service with an SDK client per module."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.support.batch_fixtures"]


@pytest.fixture(autouse=True)
def orch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ORCH_HOME (tests on the shared pool use ``pool_home`` instead)."""
    monkeypatch.setenv("ORCH_HOME", str(tmp_path / "orch-home"))
    return tmp_path / "orch-home"


@pytest.fixture(scope="module")
def ray_pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real local Ray cluster of 2 nodes (1 CPU each) created through the Ray backend; a test
    module's ``RAY_POOL_EXTRA`` dict adds pool keys (a price, say)."""
    from orchestrator import pools
    from orchestrator.records import pool_records
    from orchestrator.spec.pool import PoolSpec

    home = tmp_path_factory.mktemp("pool-home")
    old = os.environ.get("ORCH_HOME")
    os.environ["ORCH_HOME"] = str(home)
    extra = getattr(request.module, "RAY_POOL_EXTRA", {})
    pools.create_pool(PoolSpec.model_validate({"id": "testpool", "nodes": 2, "cpus_per_node": 1, **extra}))
    try:
        yield {"ORCH_HOME": str(home), "pool": "testpool"}
    finally:
        os.environ["ORCH_HOME"] = str(home)
        if pool_records.load("testpool") is not None:
            pools.delete_pool("testpool", force=True)
        if old is None:
            os.environ.pop("ORCH_HOME", None)
        else:
            os.environ["ORCH_HOME"] = old


@pytest.fixture
def pool_home(ray_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point ORCH_HOME at the shared pool's home for one test."""
    monkeypatch.setenv("ORCH_HOME", ray_pool["ORCH_HOME"])
    return ray_pool
