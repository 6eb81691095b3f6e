"""Pool routes: ``/pools`` and its actions (resize, stop resize, autoscale, update, delete)."""
from __future__ import annotations

from .conditions import check_conditions
from .context import ServiceContext
from .http_messages import Request, Response
from .listing import list_response
from .pool_scaling import initial_targets
from .responses import created, entity, status_only
from .routing import Router
from .specs import validate_pool_spec


class PoolRoutes:
    """Handlers of the pool operations."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.state = ctx.state

    def register(self, router: Router) -> None:
        """Add the pool routes to ``router``."""
        router.add("POST", "/pools", self.create)
        router.add("GET", "/pools", self.list)
        router.add("GET", "/pools/{poolId}", self.get)
        router.add("HEAD", "/pools/{poolId}", self.exists)
        router.add("PATCH", "/pools/{poolId}", self.patch)
        router.add("DELETE", "/pools/{poolId}", self.delete)
        router.add("POST", "/pools/{poolId}/updateproperties", self.replace_properties)
        router.add("POST", "/pools/{poolId}/resize", self.resize)
        router.add("POST", "/pools/{poolId}/stopresize", self.stop_resize)
        router.add("POST", "/pools/{poolId}/removenodes", self.remove_nodes)
        router.add("POST", "/pools/{poolId}/enableautoscale", self.enable_autoscale)
        router.add("POST", "/pools/{poolId}/disableautoscale", self.disable_autoscale)
        router.add("POST", "/pools/{poolId}/evaluateautoscale", self.evaluate_autoscale)

    def create(self, request: Request) -> Response:
        spec = request.json_object()
        validate_pool_spec(spec)
        pool = self.ctx.pools.create_pool(spec, initial_targets(self.state, spec))
        self.ctx.scaling.configure_new_pool(pool.id)
        return created(pool.revision, pool.url(self.state.base_url))

    def list(self, request: Request) -> Response:
        with self.state.lock:
            items = [self.state.pools[key].to_json(self.state.base_url) for key in sorted(self.state.pools)]
        return list_response(request, items, metadata_name="pools", max_page_size=self.state.settings.max_page_size)

    def get(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            check_conditions(request, pool.revision, is_read=True)
            url = pool.url(self.state.base_url)
            return entity(request, pool.to_json(self.state.base_url), pool.revision, url, "pools/@Element")

    def exists(self, request: Request) -> Response:
        with self.state.lock:
            pool = self.state.pool(request.path_params["poolId"])
            check_conditions(request, pool.revision, is_read=True)
            return status_only(200, pool.revision, pool.url(self.state.base_url))

    def patch(self, request: Request) -> Response:
        return self._update(request, replace=False, status=200)

    def replace_properties(self, request: Request) -> Response:
        return self._update(request, replace=True, status=204)

    def _update(self, request: Request, *, replace: bool, status: int) -> Response:
        body = request.json_object()
        pool_id = request.path_params["poolId"]
        with self.state.lock:
            check_conditions(request, self.state.pool(pool_id).revision, is_read=False)
            pool = self.ctx.pools.update_pool(pool_id, body, replace=replace)
            return status_only(status, pool.revision, pool.url(self.state.base_url))

    def delete(self, request: Request) -> Response:
        pool_id = request.path_params["poolId"]
        with self.state.lock:
            check_conditions(request, self.state.pool(pool_id).revision, is_read=False)
            self.ctx.pools.delete_pool(pool_id)
        return status_only(202)

    def resize(self, request: Request) -> Response:
        self.ctx.pools.resize(request.path_params["poolId"], request.json_object())
        return status_only(202)

    def stop_resize(self, request: Request) -> Response:
        self.ctx.pools.stop_resize(request.path_params["poolId"])
        return status_only(202)

    def remove_nodes(self, request: Request) -> Response:
        self.ctx.pools.remove_nodes(request.path_params["poolId"], request.json_object())
        return status_only(202)

    def enable_autoscale(self, request: Request) -> Response:
        self.ctx.scaling.enable(request.path_params["poolId"], request.json_object())
        return status_only(200)

    def disable_autoscale(self, request: Request) -> Response:
        self.ctx.scaling.disable(request.path_params["poolId"])
        return status_only(200)

    def evaluate_autoscale(self, request: Request) -> Response:
        return Response.json(200, self.ctx.scaling.evaluate(request.path_params["poolId"], request.json_object()))
