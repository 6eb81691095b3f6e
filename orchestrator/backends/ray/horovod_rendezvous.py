"""Horovod's Gloo rendezvous server, for backends that start Horovod ranks themselves.

``horovodrun`` starts an HTTP rendezvous server, tells it the host allocation and starts
every rank with ``HOROVOD_GLOO_RENDEZVOUS_ADDR``/``_PORT`` plus its ranks. A backend
without ssh (Ray) does the same in two halves: it calls :func:`start_rendezvous_server`
on the head node, then starts each rank from :func:`orchestrator.launch.plans.rank_plans`
with the server's port. The server runs in a daemon thread of the calling process, so
that process must live until the job ends; :meth:`HorovodRendezvous.stop` ends it.

It imports Horovod lazily, inside the function, so only a head that runs Horovod ranks needs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from orchestrator.errors import BackendUnavailableError, SpecError
from orchestrator.launch.plans import horovod_host_ids


@dataclass
class HorovodRendezvous:
    """A running rendezvous server: its TCP ``port`` (bound on every interface)."""

    port: int
    host_ids: tuple[str, ...]
    procs_per_node: int
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Shut the server down and join its thread; calling it twice is harmless."""
        if not self._stopped:
            self._stopped = True
            self._server.stop()

    def __enter__(self) -> HorovodRendezvous:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_rendezvous_server(hosts: Sequence[str], procs_per_node: int, *,
                            verbose: int = 0) -> HorovodRendezvous:
    """Start Horovod's rendezvous server for ``procs_per_node`` ranks on each of ``hosts``.

    ``hosts`` must be the list (head first) later given to ``rank_plans``: the server
    sizes its global, per-node and cross-node scopes from the same allocation Horovod's
    ``get_host_assignments`` makes, keyed by :func:`horovod_host_ids`. Raises
    BackendUnavailableError if Horovod is not installed.
    """
    if not hosts:
        raise SpecError("a Horovod rendezvous needs at least one host")
    if procs_per_node < 1:
        raise SpecError(f"processes per node must be >= 1, got {procs_per_node}")
    try:
        from horovod.runner.common.util.hosts import HostInfo, get_host_assignments
        from horovod.runner.http.http_server import RendezvousServer
    except ImportError as error:
        raise BackendUnavailableError(
            f"Horovod is not importable on this node: {error}",
            hint="build and install it with scripts/build_horovod.sh (or use orch's images)",
        ) from error
    host_ids = tuple(horovod_host_ids(hosts))
    allocation = get_host_assignments([HostInfo(host_id, procs_per_node) for host_id in host_ids],
                                      len(host_ids) * procs_per_node)
    server = RendezvousServer(verbose)
    port = server.start()
    server.init(allocation)
    return HorovodRendezvous(port=port, host_ids=host_ids, procs_per_node=procs_per_node,
                             _server=server)
