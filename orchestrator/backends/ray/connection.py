"""Connect this process to a pool's Ray cluster, with token auth, and map Ray's failures.

One process talks to one cluster at a time; switching pools reconnects. Unreachable
addresses fail fast with a clear error instead of Ray's long internal retries.
"""
from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager, nullcontext
from typing import Iterator

import ray
from orchestrator.backends.ray.local_cluster import auth_env
from orchestrator.backends.ray.loopback import LOOPBACK_HOSTS, keep_loopback
from orchestrator.errors import AuthError, BackendError, BackendUnavailableError

NAMESPACE = "orch"
_current: tuple[str, str | None] | None = None


def connect(address: str, token_file: str | None, *, pool_id: str, loopback: bool = False) -> None:
    """Make this process a driver of the cluster at ``address`` (no-op if already connected).
    ``loopback``: the cluster's nodes are on 127.0.0.1 (a local pool orch started unexposed); an
    address on a loopback host says the same of a cluster started otherwise."""
    global _current
    if _current == (address, token_file) and ray.is_initialized():
        return
    if ray.is_initialized():
        ray.shutdown()
    _check_reachable(address, pool_id)
    _use_token(token_file)
    for name in ("ray", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with keep_loopback() if loopback or address.rpartition(":")[0] in LOOPBACK_HOSTS else nullcontext():
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
    except ConnectionError as exc:
        raise BackendUnavailableError(f"cannot connect to the Ray cluster of pool {pool_id!r} at {address}: {exc}",
                                      hint="check the address, or recreate the pool") from None
    except Exception as exc:  # Ray raises several unrelated types here
        if "auth" in str(exc).lower() or "token" in str(exc).lower():
            raise AuthError(f"the Ray cluster at {address} refused orch's token: {exc}",
                            hint="set ray.auth_token_file in the pool spec, or RAY_AUTH_TOKEN_PATH") from None
        raise BackendError(f"connecting to Ray at {address} failed: {exc}") from None
    _current = (address, token_file)


def _use_token(token_file: str | None) -> None:
    """Point this process's Ray auth at ``token_file`` (Ray caches the token: reset it)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    if token_file:
        os.environ.update(auth_env(token_file))
        os.environ.pop("RAY_AUTH_TOKEN", None)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _check_reachable(address: str, pool_id: str) -> None:
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return
    except (OSError, ValueError):
        raise BackendUnavailableError(
            f"the Ray cluster of pool {pool_id!r} at {address} does not answer",
            hint="if orch started it, it is gone: run `orch pool delete --force` and `orch pool create`; "
                 "otherwise check ray.address in the pool spec") from None


@contextmanager
def ray_errors(what: str) -> Iterator[None]:
    """Turn Ray exceptions inside the block into ``BackendError`` naming ``what`` was being done."""
    try:
        yield
    except ray.exceptions.RayActorError as exc:
        raise BackendError(f"{what}: an orch actor died ({exc.__class__.__name__})",
                           hint="the pool may be broken: `orch pool delete --force` and create it again") from None
    except ray.exceptions.GetTimeoutError:
        raise BackendError(f"{what}: the pool manager did not answer in time") from None
    except ray.exceptions.RayError as exc:
        raise BackendError(f"{what}: {exc}") from None
