"""``orch pool create --dry-run``: the pool's estimated cost per hour, from orch's price table.

Pure rendering over ``vm_sizes.estimate_cost``; no backend is called. Autoscale pools show the
cost at their minimum and maximum node counts.
"""
from __future__ import annotations

import click

from orchestrator.backends.azure import vm_sizes
from orchestrator.cli.render import emit_json, to_plain
from orchestrator.spec import PoolSpec


def estimates(spec: PoolSpec) -> list[tuple[str, vm_sizes.CostEstimate]]:
    """(label, estimate) pairs: one for a fixed pool, min and max for an autoscale pool."""
    assert spec.azure is not None
    size, scale = spec.azure.vm_size, spec.azure.autoscale
    if scale is None:
        return [("nodes", vm_sizes.estimate_cost(size, spec.nodes.dedicated, spec.nodes.low_priority))]
    bounds = [("autoscale minimum", scale.min_nodes)]
    if scale.max_nodes is not None:
        bounds.append(("autoscale maximum", scale.max_nodes))
    return [(label, vm_sizes.estimate_cost(size, 0 if scale.low_priority else n, n if scale.low_priority else 0))
            for label, n in bounds]


def show_cost(spec: PoolSpec, output: str) -> None:
    if spec.azure is None:
        message = f"pool {spec.id} ({spec.backend}) runs on machines you already have: orch adds no cloud cost"
        if output == "json":
            emit_json({"pool": spec.id, "backend": spec.backend, "valid": True, "cost": None})
        else:
            click.echo(f"{message}\nvalid: nothing was created (dry run)")
        return
    about = vm_sizes.table_about()
    rows = estimates(spec)
    if output == "json":
        emit_json({"pool": spec.id, "backend": spec.backend, "valid": True, "vm_size": spec.azure.vm_size,
                   "estimates": {label: {**to_plain(estimate), "total_per_hour": estimate.total_per_hour}
                                 for label, estimate in rows},
                   "price_terms": about.get("price_terms"), "price_source": about.get("price_source")})
        return
    click.echo(f"pool {spec.id}: {spec.azure.vm_size} on Azure Batch (dry run: nothing was created)")
    for label, estimate in rows:
        click.echo(f"  {label}: {_money(estimate.dedicated_per_hour)} dedicated ({estimate.dedicated_nodes} nodes) + "
                   f"{_money(estimate.low_priority_per_hour)} low-priority ({estimate.low_priority_nodes} nodes) = "
                   f"{_money(estimate.total_per_hour)} {estimate.currency}/hour")
    click.echo(f"  prices: {about.get('price_terms')}")
    click.echo(f"  source: {about.get('price_source')}")


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"
