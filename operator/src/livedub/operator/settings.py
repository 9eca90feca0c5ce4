"""Operator settings: one object, one env prefix (``LIVEDUB_OPERATOR_``), read once at start-up.

Invalid values fail at import of the registration module with pydantic's message, before kopf
starts watching anything.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEDUB_OPERATOR_", frozen=True)

    autoscale_interval_s: float = Field(
        15.0, gt=0, description="Seconds between autoscaler ticks per pool (scrape + decide + status)."
    )
    scrape_timeout_s: float = Field(
        2.0, gt=0, description="Per-pod /metrics timeout; a slow pod counts as unreachable, not as idle."
    )
    scrape_concurrency: int = Field(16, ge=1, description="Most pods scraped at once per pool.")
    peering_priority: int | None = Field(
        None,
        description="kopf peering priority; unset picks a random one so exactly one replica is active.",
    )
    activator_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="Port of the scale-from-zero activation endpoint (handlers/activator.py); 0 turns it off.",
    )
    metrics_port: int = Field(
        8082,
        ge=0,
        le=65535,
        description="Port of the operator's own Prometheus /metrics (telemetry.py); 0 turns it off.",
    )
    watch_timeout_s: int = Field(
        300, ge=10, description="Server-side watch timeout; bounded so dead connections get noticed."
    )


def load_settings() -> OperatorSettings:
    return OperatorSettings()  # type: ignore[call-arg]  # values come from the environment
