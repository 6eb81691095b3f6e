"""``orch pool create --dry-run``: the pool's estimated cost per hour, from its backend's price list.

Pure rendering over ``pools.quote``; nothing is created. Autoscale pools show the cost at their
minimum and maximum node counts. Preemptible nodes (``spot``/``low_priority``) are priced as Spot
VMs, which Batch's low-priority nodes are since March 2026; the price terms say what that means. A backend without a price list runs on machines the user has.
"""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir
from orchestrator.cli.render import emit_json, to_plain
from orchestrator.spec.pool import PoolSpec


def show_cost(spec: PoolSpec, output: str) -> None:
    from orchestrator.pools import quote

    price = quote(spec, config_dir=config_dir())
    if price is None:
        message = f"pool {spec.id} ({spec.backend}) runs on machines you already have: orch adds no cloud cost"
        if output == "json":
            emit_json({"pool": spec.id, "backend": spec.backend, "valid": True, "cost": None})
        else:
            click.echo(f"{message}\nvalid: nothing was created (dry run)")
        return
    size = price.estimates[0][1].size if price.estimates else ""
    if output == "json":
        emit_json({"pool": spec.id, "backend": spec.backend, "valid": True, "vm_size": size,
                   "estimates": {label: {**to_plain(estimate), "total_per_hour": estimate.total_per_hour}
                                 for label, estimate in price.estimates},
                   "price_terms": price.terms, "price_source": price.source})
        return
    click.echo(f"pool {spec.id}: {size} on {price.service} (dry run: nothing was created)")
    for label, estimate in price.estimates:
        click.echo(f"  {label}: {_money(estimate.dedicated_per_hour)} dedicated ({estimate.dedicated_nodes} nodes) + "
                   f"{_money(estimate.low_priority_per_hour)} spot ({estimate.low_priority_nodes} nodes) = "
                   f"{_money(estimate.total_per_hour)} {estimate.currency}/hour")
    click.echo(f"  prices: {price.terms}")
    click.echo(f"  source: {price.source}")


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"
