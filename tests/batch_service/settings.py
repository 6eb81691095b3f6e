"""Tunable behaviour of the local Batch service (timings, limits, auto-storage)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import quote

from .shapes import ACCOUNT_FEATURES

# The REST API version this service models (azure-batch 15.1.0 sends it); older versions differ in bodies.
SUPPORTED_API_VERSIONS = ("2025-06-01",)


@dataclass
class AutoStorage:
    """The Batch account's linked storage, used for ``autoStorageContainerName`` resource files.

    ``blob_endpoint`` is e.g. ``http://127.0.0.1:10000/devstoreaccount1``; ``sas_token`` is an
    account SAS (without the leading ``?``) that can list and read its containers.
    """

    blob_endpoint: str
    sas_token: str

    def container_url(self, container: str) -> str:
        """SAS URL of ``container`` in the linked account."""
        return f"{self.blob_endpoint.rstrip('/')}/{quote(container)}?{self.sas_token.lstrip('?')}"


@dataclass
class ServiceSettings:
    """Knobs tests may change at any time (from Python or ``POST /_admin/settings``).

    Delays are in seconds. ``max_body_bytes`` is the largest request body accepted (Batch takes a
    task collection only when it is smaller than 1 MB; read strictly, 10^6 bytes),
    ``max_tasks_per_collection`` its task collection limit, ``max_page_size`` its list page size;
    ``autoscale_interval_s`` overrides every pool's ``autoScaleEvaluationInterval`` when set;
    autoscale metrics are sampled every ``autoscale_sample_period_s`` and reach formulas
    ``autoscale_sample_delay_s`` later (Batch: 30 s and about a minute); ``enableautoscale`` is
    refused within ``enable_autoscale_min_interval_s`` of the last (Batch: 30 s); pool statistics
    are rolled up every ``stats_rollup_s`` (Batch: typically 30 minutes);
    ``preemption_restore_s`` is how long a preempted Spot node waits for replacement capacity
    (None: it stays preempted).
    ``account_features`` are the properties this account has enabled among
    ``shapes.ACCOUNT_FEATURES`` (``maxParallelTasks``, ``allowTaskPreemption``,
    ``networkConfiguration``, ``authenticationTokenSettings``); a default account has none and
    answers 403 when a request uses one.

    Identities (``identity``, ``arm``): ``identities`` are the user-assigned managed identities
    that exist (ARM resource id -> client id); ``batch_role_identities`` the client ids with a role
    on this Batch account (None: all); ``operator_identity`` the client id the machine running the
    tests gets tokens for (it signs in to Resource Manager); tokens last ``token_lifetime_s``. The
    account's Resource Manager id is made of ``subscription_id``, ``resource_group`` and its name.
    """

    allocation_delay_s: float = 0.05
    node_boot_delay_s: float = 0.02
    deletion_delay_s: float = 0.05
    max_body_bytes: int = 999_999
    max_tasks_per_collection: int = 100
    max_page_size: int = 1000
    autoscale_interval_s: float | None = None
    autoscale_sample_period_s: float = 30.0
    autoscale_sample_delay_s: float = 60.0
    enable_autoscale_min_interval_s: float = 30.0
    stats_rollup_s: float = 1800.0
    preemption_restore_s: float | None = 0.5
    supported_api_versions: tuple[str, ...] = SUPPORTED_API_VERSIONS
    auto_storage: AutoStorage | None = field(default=None)
    account_features: frozenset[str] = frozenset()
    identities: dict[str, str] = field(default_factory=dict)
    batch_role_identities: frozenset[str] | None = None
    operator_identity: str | None = None
    token_lifetime_s: float = 3600.0
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "orch-local"

    def __post_init__(self) -> None:
        self.account_features = _features(self.account_features)

    def update(self, values: dict[str, Any]) -> None:
        """Set the named fields; ValueError for unknown names or values of the wrong type."""
        known = {item.name for item in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            if name == "auto_storage" and isinstance(value, dict):
                value = AutoStorage(**value)
            elif name == "supported_api_versions":
                value = tuple(value)
            elif name == "account_features":
                value = _features(value)
            elif name == "batch_role_identities" and value is not None:
                value = frozenset(str(item) for item in value)
            elif name == "identities":
                value = {str(key): str(item) for key, item in dict(value).items()}
            elif name.endswith("_s") and value is not None:
                value = float(value)
            elif name.startswith("max_"):
                value = int(value)
            setattr(self, name, value)

    def as_json(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        values = asdict(self)
        values["account_features"] = sorted(self.account_features)
        if self.batch_role_identities is not None:
            values["batch_role_identities"] = sorted(self.batch_role_identities)
        return values


def _features(value: Any) -> frozenset[str]:
    names = frozenset(str(name) for name in value)
    unknown = sorted(names - set(ACCOUNT_FEATURES))
    if unknown:
        raise ValueError(f"unknown account features {unknown}; known: {', '.join(ACCOUNT_FEATURES)}")
    return names


@contextmanager
def quick_autoscale(settings: ServiceSettings, interval_s: float, *, sample_s: float | None = None,
                    delay_s: float | None = None) -> Iterator[ServiceSettings]:
    """Within the block, formulas are evaluated every ``interval_s`` over samples taken every
    ``sample_s`` (default: a tenth of the interval) that reach them ``delay_s`` later (default: one
    sample period), and autoscale may be enabled again at once; the settings are restored after."""
    names = ("autoscale_interval_s", "autoscale_sample_period_s", "autoscale_sample_delay_s",
             "enable_autoscale_min_interval_s")
    before = {name: getattr(settings, name) for name in names}
    period = sample_s if sample_s is not None else interval_s / 10
    settings.update({"autoscale_interval_s": interval_s, "autoscale_sample_period_s": period,
                     "autoscale_sample_delay_s": delay_s if delay_s is not None else period,
                     "enable_autoscale_min_interval_s": 0.0})
    try:
        yield settings
    finally:
        settings.update(before)
