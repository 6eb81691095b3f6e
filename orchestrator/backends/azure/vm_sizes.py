"""Facts about Azure VM sizes: hardware, interconnect, NCCL settings and hourly prices.

The table lives in ``orchestrator/backends/azure/data/vm_sizes.json``; its ``about`` block names the
sources (Azure's size pages; an Azure Retail Prices snapshot for East US, Linux,
pay-as-you-go), the price terms and which figures are missing (``null``). Lookup is
case-insensitive and accepts names without the ``Standard_`` prefix; an unknown size
raises SpecError with the closest known names. Pure: no Azure SDK.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from orchestrator.errors import SpecError
from orchestrator.model import CostEstimate

_PREFIX = "standard_"


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size. Prices are USD per node-hour in ``PRICE_REGION``; None: unknown."""

    name: str
    family: str
    vcpus: int
    memory_gib: float
    gpus: int
    gpu_model: str | None
    gpu_memory_gib: float | None
    gpu_fraction: float | None
    infiniband: bool
    infiniband_kind: str | None
    rdma: bool
    nvlink: bool
    accelerated_networking: bool
    price_dedicated: float | None
    price_spot: float | None
    price_derived: bool
    nccl_topo_file: str | None
    note: str | None = None

    @property
    def has_gpu(self) -> bool:
        """True when the VM sees at least one GPU device."""
        return self.gpus > 0


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("orchestrator.backends.azure").joinpath("data/vm_sizes.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _sizes_by_key() -> dict[str, VmSize]:
    return {row["name"].lower(): VmSize(**row) for row in _table()["sizes"]}


PRICE_REGION: str = _table()["region"]
PRICE_CURRENCY: str = _table()["currency"]


def table_about() -> Mapping[str, str]:
    """The table's documentation: sources, price terms and known gaps."""
    return dict(_table()["about"])


def known_sizes() -> list[str]:
    """Every size name in the table, as Azure spells it."""
    return [size.name for size in _sizes_by_key().values()]


def lookup(name: str) -> VmSize:
    """The facts for ``name`` (any case, ``Standard_`` optional); SpecError if unknown."""
    key = name.strip().lower()
    if not key.startswith(_PREFIX):
        key = _PREFIX + key
    sizes = _sizes_by_key()
    if key in sizes:
        return sizes[key]
    bare_names = {known[len(_PREFIX):]: known for known in sizes}
    close = difflib.get_close_matches(key[len(_PREFIX):], list(bare_names), n=3, cutoff=0.75)
    hint = ("did you mean " + " or ".join(sizes[bare_names[match]].name for match in close) + "?"
            if close else "orch knows: " + ", ".join(known_sizes()))
    raise SpecError(f"unknown VM size {name!r}", hint=hint)


def nccl_env(size: str) -> dict[str, str]:
    """NCCL/UCX variables suited to the size's network.

    InfiniBand GPU sizes: IB transport with relaxed PCI ordering, UCX over RC on the
    first IB port, bootstrap over eth0, and the topology file Azure's HPC images ship
    where there is one. GPU sizes without IB: sockets over eth0, IB off. CPU sizes with
    IB get the UCX settings only; other CPU sizes need nothing.
    """
    facts = lookup(size)
    env: dict[str, str] = {}
    if facts.infiniband:
        env.update({"UCX_TLS": "rc", "UCX_NET_DEVICES": "mlx5_ib0:1"})
    if not facts.has_gpu:
        return env
    env["NCCL_SOCKET_IFNAME"] = "eth0"
    if not facts.infiniband:
        env["NCCL_IB_DISABLE"] = "1"
        return env
    env["NCCL_IB_PCI_RELAXED_ORDERING"] = "1"
    if facts.gpu_model and facts.gpu_model.startswith("NVIDIA"):
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    if facts.nccl_topo_file:
        env["NCCL_TOPO_FILE"] = facts.nccl_topo_file
    return env


def requires_inter_node_communication(size: str, nodes_per_task: int) -> bool:
    """Whether a Batch pool of ``size`` needs inter-node communication enabled.

    Multi-instance (multi-node) tasks need it, and so does InfiniBand between nodes, which
    only links VMs Azure places together; a single-node task needs neither.
    """
    lookup(size)
    if nodes_per_task < 1:
        raise SpecError(f"nodes per task must be >= 1, got {nodes_per_task}")
    return nodes_per_task > 1


def estimate_cost(size: str, dedicated: int, low_priority: int) -> CostEstimate:
    """The hourly list price of ``dedicated`` + ``low_priority`` (spot) nodes of ``size``."""
    if dedicated < 0 or low_priority < 0:
        raise SpecError("node counts must be >= 0")
    facts = lookup(size)
    return CostEstimate(
        size=facts.name,
        dedicated_nodes=dedicated,
        low_priority_nodes=low_priority,
        dedicated_per_hour=_times(facts.price_dedicated, dedicated),
        low_priority_per_hour=_times(facts.price_spot, low_priority),
        region=PRICE_REGION,
        currency=PRICE_CURRENCY,
    )


def _times(price: float | None, nodes: int) -> float | None:
    if nodes == 0:
        return 0.0
    return None if price is None else round(price * nodes, 6)
