"""The context every service works in: settings, control database, secret box."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from audiencesync.control.db import Database
from audiencesync.control.secrets import SecretBox
from audiencesync.settings import Settings
from audiencesync.storage import Storage, open_storage


@dataclass
class Context:
    """One home folder opened: what services need to do their work."""

    settings: Settings
    db: Database

    @property
    def home(self) -> Path:
        return self.settings.resolved_home

    @cached_property
    def storage(self) -> Storage:
        """Shared storage: datasets, uploads, snapshots and journals (the home by default)."""
        settings = self.settings
        return open_storage(
            settings.storage_url,
            self.home,
            endpoint=settings.storage_endpoint_url,
            region=settings.storage_region,
        )

    @cached_property
    def secrets(self) -> SecretBox:
        key = self.settings.secret_key
        if key is not None:
            return SecretBox.from_passphrase(key.get_secret_value())
        return SecretBox.from_key_file(self.home, create=True)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Context:
        """Open the home of ``settings``; migrate the control database when needed."""
        db = Database(settings.control_database_url)
        if migrate:
            try:
                db.ensure_ready()
            except BaseException:
                db.dispose()
                raise
        return cls(settings=settings, db=db)

    def close(self) -> None:
        self.db.dispose()
