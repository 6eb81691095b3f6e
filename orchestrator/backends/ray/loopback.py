"""Keep a local pool on 127.0.0.1: Ray's servers bind to every interface unless the node's address
is loopback, and Ray replaces a loopback address it is given with the machine's network address.

``keep_loopback`` stops that replacement for loopback hosts only. Run as a module, this is
``ray start`` with it applied (how orch starts each node of a local pool); drivers apply it
while connecting to such a pool.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@contextmanager
def keep_loopback() -> Iterator[None]:
    """Within the block, Ray keeps a loopback host as the node's (or the GCS's) address."""
    from ray._private import services

    original = services.resolve_ip_for_localhost

    def resolve(host: str) -> str:
        return host if host in LOOPBACK_HOSTS else original(host)

    services.resolve_ip_for_localhost = resolve
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


def main(argv: list[str]) -> None:
    """``ray start ARGS`` with loopback addresses kept (the process exits when ``ray start`` does)."""
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *argv]
    with keep_loopback():
        ray_main()


if __name__ == "__main__":
    main(sys.argv[1:])
