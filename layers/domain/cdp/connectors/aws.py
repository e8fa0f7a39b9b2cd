"""The Secrets Manager adapter of the sources document (cached; refreshed on a TTL so rotation needs no deploy)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from cdp.connectors.sources import SourceRegistry, SourcesConfig, parse_sources
from cdp.errors import StoreError
from cdp.shared.aws import client as default_client

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretsManagerSources(SourceRegistry):
    TTL_S = 300.0

    def __init__(self, secret_id: str, client: SecretsManagerClient | None = None) -> None:
        self._secret_id = secret_id
        self._sm: SecretsManagerClient = client or default_client("secretsmanager")
        self._config: SourcesConfig | None = None
        self._loaded_at = 0.0

    def sources(self) -> SourcesConfig:
        if self._config is None or time.monotonic() - self._loaded_at > self.TTL_S:
            try:
                raw = self._sm.get_secret_value(SecretId=self._secret_id)["SecretString"]
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"reading secret {self._secret_id} failed: {exc}") from exc
            self._config = parse_sources(raw)
            self._loaded_at = time.monotonic()
        return self._config
