"""VM-size facts: lookup, NCCL settings, inter-node communication, cost estimates."""
from __future__ import annotations

import pytest

from orchestrator.backends.azure.vm_sizes import (
    estimate_cost,
    known_sizes,
    lookup,
    nccl_env,
    requires_inter_node_communication,
    table_about,
)
from orchestrator.errors import SpecError

REQUIRED = [
    "Standard_NC4as_T4_v3", "Standard_NC8as_T4_v3", "Standard_NC16as_T4_v3", "Standard_NC64as_T4_v3",
    "Standard_NV6ads_A10_v5", "Standard_NV12ads_A10_v5", "Standard_NV18ads_A10_v5",
    "Standard_NV36ads_A10_v5", "Standard_NV72ads_A10_v5", "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4", "Standard_ND96asr_v4",
    "Standard_ND96amsr_A100_v4", "Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5",
    "Standard_ND96isr_H100_v5", "Standard_ND96isr_H200_v5", "Standard_ND96isr_MI300X_v5",
    "Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3", "Standard_NC24rs_v3",
    "Standard_D2s_v5", "Standard_D4s_v5", "Standard_D8s_v5", "Standard_D16s_v5",
    "Standard_HB120rs_v3", "Standard_F2s_v2",
]


def test_table_covers_the_required_sizes_with_consistent_facts() -> None:
    assert set(REQUIRED) <= set(known_sizes())
    for name in known_sizes():
        size = lookup(name)
        assert size.vcpus > 0 and size.memory_gib > 0
        assert (size.gpu_model is None) == (size.gpus == 0)
        assert size.rdma == size.infiniband
        assert not (size.nvlink and size.gpus < 2)
        for price in (size.price_dedicated, size.price_spot):
            assert price is None or price > 0
        if size.price_dedicated is not None and size.price_spot is not None:
            assert size.price_spot < size.price_dedicated


def test_the_table_documents_sources_terms_and_gaps() -> None:
    about = table_about()
    assert "learn.microsoft.com" in about["hardware_source"]
    assert "East US" in about["price_terms"] and "Linux" in about["price_terms"]
    assert "H200" in about["price_gaps"]


def test_known_facts() -> None:
    nd = lookup("Standard_ND96asr_v4")
    assert (nd.vcpus, nd.gpus, nd.gpu_memory_gib, nd.infiniband, nd.nvlink) == (96, 8, 40, True, True)
    t4 = lookup("Standard_NC64as_T4_v3")
    assert (t4.gpus, t4.gpu_model, t4.infiniband, t4.price_dedicated) == (4, "NVIDIA T4", False, 4.352)
    a10 = lookup("Standard_NV6ads_A10_v5")
    assert (a10.gpus, a10.gpu_memory_gib, a10.price_dedicated) == (1, 4, None)
    assert lookup("Standard_D4s_v5").has_gpu is False


@pytest.mark.parametrize("spelling", ["standard_nc24ads_a100_v4", "STANDARD_NC24ADS_A100_V4",
                                      "NC24ads_A100_v4", " Standard_NC24ads_A100_v4 "])
def test_lookup_is_case_insensitive_and_prefix_optional(spelling) -> None:
    assert lookup(spelling).name == "Standard_NC24ads_A100_v4"


def test_unknown_size_suggests_close_names() -> None:
    with pytest.raises(SpecError) as caught:
        lookup("Standard_NC24ads_A100_v5")
    assert "did you mean Standard_NC24ads_A100_v4" in str(caught.value)
    with pytest.raises(SpecError, match="orch knows"):
        lookup("potato")


def test_nccl_env_for_infiniband_gpu_sizes() -> None:
    assert nccl_env("Standard_ND96asr_v4") == {
        "UCX_TLS": "rc", "UCX_NET_DEVICES": "mlx5_ib0:1", "NCCL_SOCKET_IFNAME": "eth0",
        "NCCL_IB_PCI_RELAXED_ORDERING": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "NCCL_TOPO_FILE": "/opt/microsoft/ndv4-topo.xml"}
    assert nccl_env("Standard_ND96isr_H100_v5")["NCCL_TOPO_FILE"] == "/opt/microsoft/ndv5-topo.xml"
    assert "NCCL_TOPO_FILE" not in nccl_env("Standard_ND96isr_H200_v5")
    assert "CUDA_DEVICE_ORDER" not in nccl_env("Standard_ND96isr_MI300X_v5")


def test_nccl_env_for_other_sizes() -> None:
    assert nccl_env("Standard_NC24ads_A100_v4") == {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_DISABLE": "1"}
    assert nccl_env("Standard_D2s_v5") == {}
    assert nccl_env("Standard_HB120rs_v3") == {"UCX_TLS": "rc", "UCX_NET_DEVICES": "mlx5_ib0:1"}


def test_inter_node_communication_only_for_multi_node_tasks() -> None:
    assert requires_inter_node_communication("Standard_ND96asr_v4", 2)
    assert not requires_inter_node_communication("Standard_ND96asr_v4", 1)
    assert not requires_inter_node_communication("Standard_D2s_v5", 1)
    with pytest.raises(SpecError):
        requires_inter_node_communication("Standard_D2s_v5", 0)
    with pytest.raises(SpecError):
        requires_inter_node_communication("nope", 2)


def test_estimate_cost_adds_dedicated_and_spot_nodes() -> None:
    estimate = estimate_cost("Standard_NC6s_v3", dedicated=2, low_priority=3)
    assert estimate.dedicated_per_hour == pytest.approx(6.12)
    assert estimate.low_priority_per_hour == pytest.approx(3 * 0.3978)
    assert estimate.total_per_hour == pytest.approx(6.12 + 3 * 0.3978)
    assert estimate.total_for(10) == pytest.approx(10 * (6.12 + 3 * 0.3978))
    assert (estimate.region, estimate.currency) == ("eastus", "USD")
    assert "about 7.31 USD/hour" in estimate.describe()


def test_estimate_cost_with_missing_prices() -> None:
    h100 = estimate_cost("Standard_ND96isr_H100_v5", dedicated=1, low_priority=0)
    assert h100.total_per_hour == pytest.approx(98.32)
    spot_h100 = estimate_cost("Standard_ND96isr_H100_v5", dedicated=1, low_priority=1)
    assert spot_h100.low_priority_per_hour is None and spot_h100.total_per_hour is None
    assert spot_h100.total_for(3) is None and "price unknown" in spot_h100.describe()
    assert estimate_cost("Standard_ND96isr_H200_v5", 0, 0).total_per_hour == 0.0
    with pytest.raises(SpecError):
        estimate_cost("Standard_D2s_v5", -1, 0)
