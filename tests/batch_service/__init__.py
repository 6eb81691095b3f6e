"""A local Azure Batch REST service for tests: Batch's HTTP API (api-version 2025-06-01,
Shared Key auth, or the job-scoped bearer tokens job manager tasks get; HTTPS with ``tls``),
with pools of simulated nodes whose tasks run as local processes.

    with start_batch_service(tmp_path) as batch:
        client = BatchClient(batch.url, AzureNamedKeyCredential(batch.account, batch.key))

See ``BatchService`` for fault injection and the request log, ``ServiceSettings`` for timings
and limits, and ``python -m tests.batch_service --help`` for a standalone server.
"""
from __future__ import annotations

from .faults import FaultRule, RequestRecord
from .service import BatchService, start_batch_service
from .settings import AutoStorage, ServiceSettings
from .tls import TlsFiles, self_signed_cert

__all__ = ["AutoStorage", "BatchService", "FaultRule", "RequestRecord", "ServiceSettings", "TlsFiles",
           "self_signed_cert", "start_batch_service"]
