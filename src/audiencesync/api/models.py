"""Request and response models of the REST API.

Each resource has a Public model built from the service's view (``of``), so a response can
only carry the fields listed here: no token, secret, password hash or encrypted value
exists in any of them. Create/Update models are what clients send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audiencesync.api.auth import TokenView
from audiencesync.control.audit import AuditView
from audiencesync.control.models import Role
from audiencesync.control.users import UserView
from audiencesync.profiles.store import DatasetView
from audiencesync.segments.rules import dump_rules
from audiencesync.segments.service import (
    CountResult,
    EvaluationView,
    ExplainNode,
    SegmentView,
)
from audiencesync.sync.connections import ConnectionView
from audiencesync.sync.exports import ExportView
from audiencesync.sync.runs import RunView
from audiencesync.sync.schedule import ScheduleView


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Out):
    detail: str


# --- me and tokens ------------------------------------------------------------------


class Me(_Out):
    name: str
    role: Role
    authenticated_by: Literal["session", "token"]


class TokenCreate(_In):
    name: str = Field(description="what the token is for, e.g. 'nightly script'")
    expires_in_days: int | None = Field(default=None, description="empty: never expires")


class TokenPublic(_Out):
    id: int
    name: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, view: TokenView) -> TokenPublic:
        return cls(
            id=view.id,
            name=view.name,
            prefix=view.prefix,
            created_at=view.created_at,
            last_used_at=view.last_used_at,
            expires_at=view.expires_at,
        )


class TokenCreated(TokenPublic):
    token: str = Field(description="the token itself: shown this once, store it now")


# --- users --------------------------------------------------------------------------


class UserPublic(_Out):
    name: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, view: UserView) -> UserPublic:
        return cls(name=view.name, role=view.role, created_at=view.created_at)


class UserCreate(_In):
    name: str
    role: Role
    password: str = Field(min_length=1)


class UserUpdate(_In):
    role: Role | None = None
    password: str | None = None
    current_password: str | None = Field(
        default=None, description="your current password: needed to change your own"
    )


# --- profile datasets ---------------------------------------------------------------


class ColumnPublic(_Out):
    name: str
    type: str


class DatasetPublic(_Out):
    name: str
    kind: str
    key_column: str
    source: str
    row_count: int
    columns: list[ColumnPublic]
    imported_at: datetime | None
    imported_by: str | None

    @classmethod
    def of(cls, view: DatasetView) -> DatasetPublic:
        return cls(
            name=view.name,
            kind=view.kind,
            key_column=view.key_column,
            source=view.source,
            row_count=view.row_count,
            columns=[ColumnPublic(name=c.name, type=c.type) for c in view.columns],
            imported_at=view.imported_at,
            imported_by=view.imported_by,
        )


class DatasetImport(_In):
    path: str = Field(description="a CSV, Parquet or JSON file the server can read")
    key: str = Field(description="the column that identifies a profile")
    name: str | None = None
    format: Literal["csv", "parquet", "json", "ndjson"] | None = None
    delimiter: str | None = None
    encoding: str | None = None
    on_duplicate_key: Literal["error", "first", "last"] = "error"


class DatasetLink(_In):
    name: str
    url: str = Field(description="database URL, e.g. postgresql://user@host/db")
    table: str
    key: str


class Sample(_Out):
    columns: list[str]
    rows: list[dict[str, Any]]


# --- segments -----------------------------------------------------------------------


class SegmentPublic(_Out):
    name: str
    dataset: str
    rules: dict[str, Any]
    description: str | None
    references: list[str]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    last_size: int | None
    last_evaluated_at: datetime | None

    @classmethod
    def of(cls, view: SegmentView) -> SegmentPublic:
        return cls(
            name=view.name,
            dataset=view.dataset,
            rules=dump_rules(view.rules),
            description=view.description,
            references=list(view.references),
            created_at=view.created_at,
            created_by=view.created_by,
            updated_at=view.updated_at,
            updated_by=view.updated_by,
            last_size=view.last_size,
            last_evaluated_at=view.last_evaluated_at,
        )


class SegmentCreate(_In):
    name: str
    dataset: str
    rules: Any = Field(default=None, description="the rule as JSON (see /segments/schema)")
    rules_text: str | None = Field(default=None, description="or the rule as YAML/JSON text")
    description: str | None = None


class SegmentUpdate(_In):
    rules: Any = None
    rules_text: str | None = None
    description: str | None = None


class RulesCheck(_In):
    dataset: str
    rules: Any = None
    rules_text: str | None = None
    segment: str | None = None


class CountPublic(_Out):
    segment: str
    size: int
    seconds: float
    engine: str

    @classmethod
    def of(cls, result: CountResult) -> CountPublic:
        return cls(
            segment=result.segment, size=result.size, seconds=result.seconds, engine=result.engine
        )


class PreviewPublic(_Out):
    segment: str
    size: int
    key_column: str
    columns: list[str]
    rows: list[dict[str, Any]]


class ExplainPublic(_Out):
    path: str
    label: str
    count: int
    children: list[ExplainPublic]

    @classmethod
    def of(cls, node: ExplainNode) -> ExplainPublic:
        return cls(
            path=node.path,
            label=node.label,
            count=node.count,
            children=[cls.of(c) for c in node.children],
        )


class EvaluationPublic(_Out):
    at: datetime
    kind: str
    size: int
    duration_ms: int
    actor: str | None

    @classmethod
    def of(cls, view: EvaluationView) -> EvaluationPublic:
        return cls(
            at=view.at,
            kind=view.kind,
            size=view.size,
            duration_ms=view.duration_ms,
            actor=view.actor,
        )


class SqlPublic(_Out):
    segment: str
    sql: str


# --- connections --------------------------------------------------------------------


class AdAccountPublic(_Out):
    id: str
    name: str
    organization_id: str


class ConnectionPublic(_Out):
    """Administrators see every field but secrets; others see name and type only."""

    name: str
    type: str
    full: bool
    shared_with_contributors: bool | None = None
    status: str | None = None
    export_user: str | None = None
    consent_by: str | None = None
    consent_at: datetime | None = None
    consent_version: str | None = None
    platform_user_name: str | None = None
    organization_ids: list[str] | None = None
    ad_accounts: list[AdAccountPublic] | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    authenticated_at: datetime | None = None
    exports: list[str] | None = None

    @classmethod
    def of(cls, view: ConnectionView) -> ConnectionPublic:
        if not view.full:
            return cls(name=view.name, type=view.type, full=False)
        return cls(
            name=view.name,
            type=view.type,
            full=True,
            shared_with_contributors=view.shared_with_contributors,
            status=view.status,
            export_user=view.export_user,
            consent_by=view.consent_by,
            consent_at=view.consent_at,
            consent_version=view.consent_version,
            platform_user_name=view.platform_user_name,
            organization_ids=list(view.organization_ids),
            ad_accounts=[
                AdAccountPublic(id=a.id, name=a.name, organization_id=a.organization_id)
                for a in view.ad_accounts
            ],
            created_by=view.created_by,
            created_at=view.created_at,
            authenticated_at=view.authenticated_at,
            exports=list(view.exports),
        )


class AuthorizationStart(_In):
    redirect_uri: str | None = Field(
        default=None,
        description="where Snapchat sends the browser back; default: this API's callback",
    )


class AuthorizationPublic(_Out):
    state: str = Field(description="give it back with the code, or to create the connection")
    authorization_url: str = Field(description="open this in a browser and approve")
    redirect_uri: str
    privacy_text: str = Field(description="what you agree to with agree=true")
    consent_version: str


class AuthorizationStatus(_Out):
    state_ready: bool = Field(description="whether the sign-in came back with tokens")


class ConnectionCreate(_In):
    name: str = Field(description="display name")
    share_with_contributors: bool = False
    agree: bool = Field(description="you agree to the data privacy and compliance text")
    state: str = Field(description="the state of a started authorization")
    code: str | None = Field(
        default=None,
        description="the code from the redirect, when it went to your own redirect_uri",
    )


class Reauthenticate(_In):
    state: str
    code: str | None = None


class AccessUpdate(_In):
    share_with_contributors: bool


class ConnectionRemoved(_Out):
    name: str
    detached_exports: list[str]


# --- exports ------------------------------------------------------------------------


class ExportPublic(_Out):
    name: str
    state: str
    connection: str | None
    connection_status: str | None
    audience_id: str
    audience_name: str
    ad_account_id: str
    dataset: str
    segments: list[str]
    email_field: str | None
    phone_field: str | None
    maid_field: str | None
    default_country: str | None
    mode: str
    enabled: bool
    schedule: str
    timezone: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    validation: dict[str, Any]
    last_run_status: str | None
    last_run_at: datetime | None
    next_run_at: datetime | None

    @classmethod
    def of(cls, view: ExportView) -> ExportPublic:
        return cls(
            name=view.name,
            state=view.state,
            connection=view.connection,
            connection_status=view.connection_status,
            audience_id=view.audience_id,
            audience_name=view.audience_name,
            ad_account_id=view.ad_account_id,
            dataset=view.dataset,
            segments=list(view.segments),
            email_field=view.email_field,
            phone_field=view.phone_field,
            maid_field=view.maid_field,
            default_country=view.default_country,
            mode=view.mode,
            enabled=view.enabled,
            schedule=view.schedule,
            timezone=view.timezone,
            created_by=view.created_by,
            created_at=view.created_at,
            updated_at=view.updated_at,
            validation=view.validation,
            last_run_status=view.last_run_status,
            last_run_at=view.last_run_at,
            next_run_at=view.next_run_at,
        )


class ExportCreate(_In):
    name: str
    connection: str
    segments: list[str] = Field(min_length=1)
    email_field: str | None = None
    phone_field: str | None = None
    maid_field: str | None = None
    default_country: str | None = None
    audience_id: str | None = None
    create_audience: bool = False
    audience_name: str | None = None
    retention_days: int = 9999
    ad_account_id: str | None = None
    mode: Literal["mirror", "add-only"] = "mirror"
    schedule: str = "system"
    timezone: str = "UTC"
    enabled: bool = True


class ExportUpdate(_In):
    """Fields to change; the others keep their saved values."""

    name: str | None = None
    connection: str | None = None
    segments: list[str] | None = None
    email_field: str | None = None
    phone_field: str | None = None
    maid_field: str | None = None
    default_country: str | None = None
    audience_id: str | None = None
    create_audience: bool | None = None
    audience_name: str | None = None
    retention_days: int | None = None
    ad_account_id: str | None = None
    mode: Literal["mirror", "add-only"] | None = None
    schedule: str | None = None
    timezone: str | None = None
    enabled: bool | None = None


class ExportDuplicate(_In):
    new_name: str


class RunRequest(_In):
    full: bool = Field(default=False, description="re-send every identifier")


class ClearRequest(_In):
    confirm: bool = Field(description="true: empty the Snapchat audience")


# --- runs ---------------------------------------------------------------------------


class RunPublic(_Out):
    id: int
    export: str
    trigger: str
    requested_by: str
    status: str
    dry_run: bool
    full: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    counts: dict[str, Any]
    progress: dict[str, Any]
    audience: dict[str, Any]
    errors: list[str]
    reject_samples: dict[str, Any]

    @classmethod
    def of(cls, view: RunView) -> RunPublic:
        return cls(
            id=view.id,
            export=view.export,
            trigger=view.trigger,
            requested_by=view.requested_by,
            status=view.status,
            dry_run=view.dry_run,
            full=view.full,
            queued_at=view.queued_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            seconds=view.seconds,
            counts=view.counts,
            progress=view.progress,
            audience=view.audience,
            errors=list(view.errors),
            reject_samples=view.reject_samples,
        )


class ProgressPublic(_Out):
    id: int
    status: str
    phase: str | None
    done: int
    total: int
    batches_done: int
    batches_total: int

    @classmethod
    def of(cls, view: RunView) -> ProgressPublic:
        progress = view.progress
        return cls(
            id=view.id,
            status=view.status,
            phase=progress.get("phase"),
            done=int(progress.get("done", 0)),
            total=int(progress.get("total", 0)),
            batches_done=int(progress.get("batches_done", 0)),
            batches_total=int(progress.get("batches_total", 0)),
        )


# --- schedule and audit -------------------------------------------------------------


class SchedulePublic(_Out):
    enabled: bool
    cron: str
    timezone: str
    next_run_at: datetime | None
    last_fired_at: datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, view: ScheduleView) -> SchedulePublic:
        return cls(
            enabled=view.enabled,
            cron=view.cron,
            timezone=view.timezone,
            next_run_at=view.next_run_at,
            last_fired_at=view.last_fired_at,
            updated_by=view.updated_by,
        )


class ScheduleUpdate(_In):
    enabled: bool
    cron: str
    timezone: str = "UTC"


class AuditPublic(_Out):
    at: datetime
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, view: AuditView) -> AuditPublic:
        return cls(
            at=view.at,
            actor=view.actor,
            action=view.action,
            target=view.target,
            before=view.before,
            after=view.after,
        )
