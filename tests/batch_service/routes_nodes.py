"""Compute node routes: ``/pools/{poolId}/nodes`` list and get."""
from __future__ import annotations

from .context import ServiceContext
from .http_messages import Request, Response
from .listing import list_response
from .responses import entity
from .revision import Revision
from .routing import Router


class NodeRoutes:
    """Handlers of the node operations."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.state = ctx.state

    def register(self, router: Router) -> None:
        """Add the node routes to ``router``."""
        router.add("GET", "/pools/{poolId}/nodes", self.list)
        router.add("GET", "/pools/{poolId}/nodes/{nodeId}", self.get)

    def list(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            start_task = pool.spec.get("startTask")
            items = [pool.nodes[key].to_json(self.state.base_url, start_task) for key in sorted(pool.nodes)]
        return list_response(request, items, metadata_name="nodes", max_page_size=self.state.settings.max_page_size)

    def get(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            node = self.state.node(request.path_params["poolId"], request.path_params["nodeId"])
            body = node.to_json(self.state.base_url, pool.spec.get("startTask"))
            changed = node.lifecycle.transition_time
            revision = Revision(node.allocation_time, changed, etag=f"0x8D{int(changed.timestamp() * 1e6):X}")
            return entity(request, body, revision, node.url(self.state.base_url), "nodes/@Element")
