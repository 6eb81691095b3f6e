"""Azure credentials: ``credentials.yaml`` in the config dir, or environment variables.

Where they come from, first match wins:

1. the file named by ``ORCH_CREDENTIALS_FILE``;
2. ``<config dir>/credentials.yaml`` (``--config-dir`` / ``ORCH_CONFIG_DIR``);
3. ``$ORCH_HOME/credentials.yaml``;
4. the environment: ``ORCH_BATCH_ACCOUNT``, ``ORCH_BATCH_URL``, ``ORCH_BATCH_KEY`` (or
   ``ORCH_BATCH_AAD=1`` for Entra ID through ``DefaultAzureCredential``; ``ORCH_BATCH_RESOURCE_ID``
   for pools with a managed identity, created through Azure Resource Manager); storage from
   ``ORCH_STORAGE_CONNECTION_STRING``, or ``ORCH_STORAGE_ACCOUNT`` with ``ORCH_STORAGE_KEY``,
   ``ORCH_STORAGE_SAS`` or ``ORCH_STORAGE_AAD=1`` (``ORCH_STORAGE_URL``: blob endpoint, default
   ``https://<account>.blob.core.windows.net``).

Secrets are ``SecretStr``: they print as ``**********`` and are redacted from spec errors.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from pydantic import Field, SecretStr, model_validator

from orchestrator.errors import AuthError, SpecError, SpecErrors
from orchestrator.spec.common import StrictModel
from orchestrator.spec.loader import validate_model
from orchestrator.spec.yaml_source import read_yaml

FILE_NAME = "credentials.yaml"
SECRET_KEYS = ("key", "connection_string", "sas", "password")
_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
_QUOTED_INPUT = re.compile(r" \(got .*\)$", re.S)
_BATCH_ACCOUNT_ID = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Batch/batchAccounts/[^/]+$"


class BatchAccount(StrictModel):
    """A Batch account: shared key, or ``aad: true`` for Entra ID (DefaultAzureCredential).

    ``resource_id`` (its Azure Resource Manager id) is needed only for pools with a managed
    identity, which Batch creates through Resource Manager (``management_url``), always with
    Entra ID (DefaultAzureCredential)."""

    account: str = Field(min_length=3, max_length=24)
    url: str = Field(pattern=_URL)
    key: SecretStr | None = None
    aad: bool = False
    resource_id: str | None = Field(default=None, pattern=_BATCH_ACCOUNT_ID)
    management_url: str = Field(default="https://management.azure.com", pattern=_URL)

    @model_validator(mode="after")
    def _one_auth(self) -> "BatchAccount":
        if (self.key is None) == (not self.aad):
            raise ValueError("batch needs exactly one of key (shared key) or aad: true (Entra ID)")
        return self


class StorageAccount(StrictModel):
    """A storage account for inputs, outputs and log copies."""

    account: str | None = Field(default=None, min_length=3, max_length=24)
    url: str | None = Field(default=None, pattern=_URL)
    key: SecretStr | None = None
    connection_string: SecretStr | None = None
    sas: SecretStr | None = None
    aad: bool = False

    @model_validator(mode="after")
    def _one_auth(self) -> "StorageAccount":
        ways = [self.key is not None, self.connection_string is not None, self.sas is not None, self.aad]
        if sum(ways) != 1:
            raise ValueError("storage needs exactly one of key, connection_string, sas or aad: true")
        if self.connection_string is None and self.account is None:
            raise ValueError("storage needs account (unless a connection_string is given)")
        return self

    @property
    def blob_url(self) -> str | None:
        """The blob endpoint, when not inside a connection string."""
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.account}.blob.core.windows.net" if self.account else None


class RegistryLogin(StrictModel):
    """A container registry login, referenced by name from a pool's ``azure.container``."""

    username: str = Field(min_length=1)
    password: SecretStr


class Credentials(StrictModel):
    batch: BatchAccount
    storage: StorageAccount | None = None
    registries: dict[str, RegistryLogin] = Field(default_factory=dict)
    source: str = Field(default="environment", exclude=True, description="where these came from (not a key)")


def find_file(config_dir: Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file in effect (see the module docstring), or None."""
    env = os.environ if env is None else env
    explicit = env.get("ORCH_CREDENTIALS_FILE")
    if explicit:
        if not Path(explicit).is_file():
            raise AuthError(f"ORCH_CREDENTIALS_FILE names {explicit}, which does not exist")
        return Path(explicit)
    home = Path(env.get("ORCH_HOME") or Path.home() / ".orch")
    for directory in (config_dir, Path(env["ORCH_CONFIG_DIR"]) if env.get("ORCH_CONFIG_DIR") else None, home):
        if directory is not None and (directory / FILE_NAME).is_file():
            return (directory / FILE_NAME).resolve()
    return None


def load(config_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from the first source that has them; AuthError when none does."""
    env = os.environ if env is None else env
    path = find_file(config_dir, env)
    if path is not None:
        return load_file(path)
    return from_environment(env)


def load_file(path: Path) -> Credentials:
    """Validate a credentials file; errors name file:line and never show a secret."""
    source = read_yaml(path)
    secrets = _secret_values(source.data)
    try:
        loaded = validate_model(Credentials, source)
    except SpecError as exc:
        raise _redacted(exc, secrets) from None
    return loaded.model_copy(update={"source": str(path)})


def from_environment(env: Mapping[str, str]) -> Credentials:
    """Credentials from ``ORCH_BATCH_*``/``ORCH_STORAGE_*``; AuthError when Batch's are missing."""
    if not env.get("ORCH_BATCH_ACCOUNT") or not env.get("ORCH_BATCH_URL"):
        raise AuthError("no Azure credentials: no credentials.yaml and ORCH_BATCH_ACCOUNT/ORCH_BATCH_URL are not set",
                        hint="copy templates/credentials.yaml.example to <config dir>/credentials.yaml, "
                             "or set ORCH_BATCH_ACCOUNT, ORCH_BATCH_URL and ORCH_BATCH_KEY (or ORCH_BATCH_AAD=1)")
    data: dict[str, object] = {"batch": _pick(env, "ORCH_BATCH_", ("account", "url", "key", "resource_id",
                                                                   "management_url"))}
    storage = _pick(env, "ORCH_STORAGE_", ("account", "url", "key", "connection_string", "sas"))
    if storage:
        data["storage"] = storage
    try:
        return Credentials.model_validate(data)
    except ValueError as exc:
        secrets = [str(v) for v in env.values() if v]
        message = "; ".join(e["msg"] for e in getattr(exc, "errors", lambda: [])()) or "invalid"
        raise AuthError(_redact(f"Azure credentials from the environment are incomplete: {message}", secrets),
                        hint="see `orch` README, section Azure credentials") from None


def _pick(env: Mapping[str, str], prefix: str, names: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {name: env[prefix + name.upper()] for name in names if env.get(prefix + name.upper())}
    if env.get(prefix + "AAD", "").lower() in ("1", "true", "yes"):
        out["aad"] = True
    return out


def _secret_values(data: object) -> list[str]:
    """Every value under a secret key, anywhere in the parsed YAML."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in SECRET_KEYS and value is not None and not isinstance(value, (dict, list)):
                found.append(str(value))
            else:
                found += _secret_values(value)
    elif isinstance(data, list):
        for value in data:
            found += _secret_values(value)
    return found


def _redact(text: str, secrets: list[str]) -> str:
    """``text`` without the secrets, and without the offending value pydantic quotes ("(got …)")."""
    text = _QUOTED_INPUT.sub("", text)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "**********").replace(repr(secret), "'**********'")
    return text


def _redacted(error: SpecError, secrets: list[str]) -> SpecError:
    if isinstance(error, SpecErrors):
        return SpecErrors([_redacted(e, secrets) for e in error.errors])
    return SpecError(_redact(error.message, secrets), hint=error.hint, where=error.where)
