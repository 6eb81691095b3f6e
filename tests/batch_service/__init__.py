"""A local Azure Batch REST service for tests: the part of Batch's HTTP API (api-version
2025-06-01) that orch calls, with Shared Key auth, the job-scoped bearer tokens job manager
tasks get, or managed identities' tokens (HTTPS with ``tls``), and pools of simulated nodes whose
tasks run as local processes. Nodes get tokens for their pool's managed identities from an
identity endpoint like an Azure VM's (``identity``); pools with identities are created through
the one Resource Manager operation this service plays (``arm``).
Other operations, query options and conditional headers get Batch's 4xx errors (see ``routing``).
Request bodies are held to the REST reference's rules (``schema``, ``shapes``, ``specs``): what
Batch refuses is refused with its error body, and properties a default account lacks answer 403
until a test enables them (``ServiceSettings.account_features``).

    with start_batch_service(tmp_path) as batch:
        client = BatchClient(batch.url, AzureNamedKeyCredential(batch.account, batch.key))

See ``BatchService`` for fault injection (HTTP faults, and Spot preemption: ``preemption``), the
request log and every node's billed life (``node_lives``), ``ServiceSettings`` for timings and
limits (``quick_autoscale`` for autoscale over seconds rather than minutes), and
``python -m tests.batch_service --help`` for a standalone server.
"""
from __future__ import annotations

from .faults import FaultRule, RequestRecord
from .node_lives import NodeLife
from .preemption import Preemption
from .server import TlsFiles, self_signed_cert
from .service import BatchService, start_batch_service
from .settings import AutoStorage, ServiceSettings, quick_autoscale

__all__ = ["AutoStorage", "BatchService", "FaultRule", "NodeLife", "Preemption", "RequestRecord", "ServiceSettings",
           "TlsFiles", "quick_autoscale", "self_signed_cert", "start_batch_service"]
