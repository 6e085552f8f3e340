"""Settings: environment variables ``AUDIENCESYNC_*``, all optional (see README)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of audiencesync, read from ``AUDIENCESYNC_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="AUDIENCESYNC_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".audiencesync"), description="data folder")
    database_url: str | None = Field(default=None, description="control database URL")
    secret_key: SecretStr | None = Field(default=None, description="key that encrypts secrets")
    user: str | None = Field(default=None, description="user the CLI acts as")

    snapchat_api_url: str = "https://adsapi.snapchat.com"
    snapchat_auth_url: str = "https://accounts.snapchat.com"
    snapchat_client_id: str | None = None
    snapchat_client_secret: SecretStr | None = None
    snapchat_redirect_uri: str = "http://127.0.0.1:8765/oauth/callback"

    # HTTP client knobs (retry policy, rate and concurrency limits).
    http_timeout_seconds: float = 60.0
    http_max_attempts: int = 8
    # 429s are retried on their own budget: a rate-limit storm is expected, not a failure.
    http_max_rate_limited_attempts: int = 20
    # A Retry-After longer than this is not waited out: the call fails as retryable.
    http_retry_after_max_seconds: float = 300.0
    http_backoff_base_seconds: float = 0.5
    http_backoff_max_seconds: float = 30.0
    http_requests_per_second: float = 10.0
    # Two requests in flight keep up with 10 requests/s; more only hold more batches in memory.
    http_max_concurrency: int = 2
    token_refresh_margin_seconds: float = 120.0

    # Sync knobs.
    batch_size: int = Field(default=100_000, ge=1, le=100_000)
    run_lease_seconds: float = 300.0

    log_level: str = "WARNING"

    @cached_property
    def resolved_home(self) -> Path:
        """The home folder as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def control_database_url(self) -> str:
        """The control database URL: the setting, or SQLite in the home folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'control.db'}"


def load_settings() -> Settings:
    """Read settings from the environment."""
    return Settings()
