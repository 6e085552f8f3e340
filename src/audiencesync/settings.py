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
    #: shared storage for datasets, uploads, snapshots and journals (storage.py): the
    #: home folder when unset, another folder, or ``s3://bucket/prefix``.
    storage_url: str | None = Field(default=None, description="shared storage")
    #: the S3-compatible server of an ``s3://`` storage URL (AWS when unset).
    storage_endpoint_url: str | None = None
    #: the bucket's region (else AWS_REGION / AWS_DEFAULT_REGION / Arrow's default).
    storage_region: str | None = None

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

    # Alert delivery: attempts per channel, the wait before the first retry (doubling
    # after each), and the connect/read timeout of one attempt.
    alert_attempts: int = Field(default=3, ge=1, le=10)
    alert_retry_seconds: float = Field(default=2.0, ge=0.0, le=600.0)
    alert_timeout_seconds: float = Field(default=10.0, gt=0.0, le=120.0)

    log_level: str = "WARNING"

    # Retention (docs/privacy.md): reject samples (profile keys) kept on run records, and
    # uploaded files no dataset uses any more.
    reject_sample_retention_days: int = Field(default=30, ge=0, le=3650)
    upload_retention_hours: float = Field(default=24.0, ge=0.0, le=24.0 * 3650)

    # Spark sources (docs/sources.md). ``spark://local`` is a local session over this
    # warehouse folder: every Parquet table folder in it is a table, in every process.
    spark_warehouse: Path | None = None
    #: the Spark master of ``spark://local`` sessions.
    spark_master: str = "local[*]"
    #: folder Spark writes members' Parquet to for the engine to read (default: the
    #: home's ``scratch/spark``); for ``sc://`` servers it must be shared with the server.
    spark_exchange: Path | None = None

    # Hostile-input bounds (docs/sources.md, README "Settings").
    #: folders (separated by ':') the server may import profile files from by path; none
    #: by default, so the API and web UI take uploads only. The CLI reads any local path.
    import_folders: str = ""
    #: addresses (or networks, separated by ',') of reverse proxies whose X-Forwarded-For
    #: is believed; none by default, so the peer address is the client.
    trusted_proxies: str = ""
    #: largest request body the API and web UI read, except file uploads.
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    #: largest file upload (multipart body), AUDIENCESYNC_MAX_UPLOAD_BYTES: 512 MiB by
    #: default; larger profile files are imported with the CLI or from an import folder.
    max_upload_bytes: int = Field(default=512 << 20, ge=1024)

    @property
    def import_folder_paths(self) -> list[Path]:
        """The import folders, resolved; empty when none are set."""
        parts = [p.strip() for p in self.import_folders.split(":")]
        return [Path(p).expanduser().resolve() for p in parts if p]

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
