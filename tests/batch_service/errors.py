"""Batch error responses: the exception handlers raise and the JSON body Batch sends::

    {"odata.metadata": ".../$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
     "code": "PoolNotFound",
     "message": {"lang": "en-US", "value": "The specified pool does not exist.\\nRequestId:...\\nTime:..."},
     "values": [{"key": "...", "value": "..."}]}
"""
from __future__ import annotations

from typing import Any

from .timekeeping import format_timestamp, utc_now

# code -> (HTTP status, message), from the Batch status and error code reference.
ERROR_CATALOG: dict[str, tuple[int, str]] = {
    "MissingRequiredHeader": (400, "A required HTTP header was not specified."),
    "MissingRequiredProperty": (400, "A required property was not specified in the request body."),
    "MissingRequiredQueryParameter": (400, "A required query parameter was not specified for this request."),
    "UnsupportedHeader": (400, "One of the HTTP headers specified in the request is not supported."),
    "UnsupportedProperty": (400, "One of the properties specified in the request body is not supported."),
    "UnsupportedQueryParameter": (400, "One of the query parameters specified in the request URI is not "
                                       "supported."),
    "UnsupportedRequestVersion": (400, "The specified request version is not supported."),
    "InvalidHeaderValue": (400, "The value provided for one of the HTTP headers was not in the correct format."),
    "InvalidPropertyValue": (400, "The value provided for one of the properties in the request body is invalid."),
    "InvalidQueryParameterValue": (400, "Value for one of the query parameters specified in the request URI "
                                        "is invalid."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "InvalidRequestBody": (400, "The specified Request Body is not syntactically valid."),
    "InvalidAuthenticationInfo": (400, "The authentication information was not provided in the correct format. "
                                       "Verify the value of Authorization header."),
    "AutoScalingFormulaSyntaxError": (400, "The specified auto-scaling formula has a syntax error."),
    "TaskDependenciesNotSpecifiedOnJob": (400, "A task was specified as depending on other tasks, but the job "
                                               "did not specify that it would use task dependencies."),
    "TaskDependencyListTooLong": (400, "The list of task ids this task depends on is too long."),
    "Forbidden": (403, "Access is Forbidden."),
    "AuthenticationFailed": (403, "Server failed to authenticate the request. Make sure the value of "
                                  "Authorization header is formed correctly including the signature."),
    "PoolNotFound": (404, "The specified pool does not exist."),
    "NodeNotFound": (404, "The specified node does not exist."),
    "JobNotFound": (404, "The specified job does not exist."),
    "TaskNotFound": (404, "The specified task does not exist."),
    "FileNotFound": (404, "The specified file does not exist."),
    "UnsupportedHttpVerb": (405, "The resource doesn't support the specified HTTP verb."),
    "OperationInvalidForCurrentState": (409, "The specified operation is not valid for the current state of "
                                             "the resource."),
    "PoolBeingDeleted": (409, "The specified pool has been marked for deletion and is being reclaimed."),
    "PoolBeingResized": (409, "The specified pool is being resized."),
    "PoolExists": (409, "The specified pool already exists."),
    "JobExists": (409, "The specified job already exists."),
    "JobBeingTerminated": (409, "The specified job is being terminated."),
    "JobBeingDeleted": (409, "The specified job has been marked for deletion and is being garbage collected."),
    "JobCompleted": (409, "The specified job is already in a completed state."),
    "TaskExists": (409, "The specified task already exists."),
    "TaskCompleted": (409, "The specified task is already in a completed state."),
    "TaskFilesUnavailable": (409, "The files of the specified task are unavailable."),
    "RequestBodyTooLarge": (413, "The request body is too large and exceeds the maximum permissible limit."),
    "InvalidRange": (416, "The range specified is invalid for the current size of the resource."),
    "TooManyRequests": (429, "The request rate is too high. Please retry the request after the indicated time."),
    "InternalError": (500, "The server encountered an internal error. Please retry the request."),
    "ServerBusy": (503, "The server is currently unable to receive requests. Please retry your request."),
}


class BatchApiError(Exception):
    """An error response: HTTP status (the catalog's unless given), code, message, key/value details."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None,
                 values: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> None:
        catalog_status, catalog_message = ERROR_CATALOG.get(code, (500, code))
        self.code = code
        self.status = status if status is not None else catalog_status
        self.message = message or catalog_message
        self.values = list(values or [])
        self.headers = dict(headers or {})
        super().__init__(f"{self.status} {code}: {self.message}")

    def error_json(self, request_id: str) -> dict[str, Any]:
        """The ``BatchError`` object (no odata.metadata), as nested in task-add results."""
        text = f"{self.message}\nRequestId:{request_id}\nTime:{format_timestamp(utc_now())}"
        body: dict[str, Any] = {"code": self.code, "message": {"lang": "en-US", "value": text}}
        if self.values:
            body["values"] = [{"key": key, "value": value} for key, value in self.values]
        return body

    def body(self, base_url: str, request_id: str) -> dict[str, Any]:
        """The complete error response body."""
        metadata = f"{base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
        return {"odata.metadata": metadata, **self.error_json(request_id)}


def missing_property(name: str) -> BatchApiError:
    """400 MissingRequiredProperty naming the property."""
    return BatchApiError("MissingRequiredProperty", values=[("PropertyName", name)])


def invalid_property(name: str, reason: str) -> BatchApiError:
    """400 InvalidPropertyValue naming the property and why."""
    return BatchApiError("InvalidPropertyValue", values=[("PropertyName", name), ("Reason", reason)])


def unsupported_property(name: str, reason: str) -> BatchApiError:
    """400 UnsupportedProperty: a property this local service does not model."""
    return BatchApiError("UnsupportedProperty", values=[("PropertyName", name), ("Reason", reason)])
