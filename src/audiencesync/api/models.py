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
from audiencesync.profiles.sources import SourceView
from audiencesync.profiles.store import DatasetView
from audiencesync.profiles.unify.service import Explanation, UnificationView
from audiencesync.segments.rules import dump_rules
from audiencesync.segments.service import (
    CountResult,
    EvaluationView,
    ExplainNode,
    SegmentView,
)
from audiencesync.sync.alerts import ChannelView, DeliveryView
from audiencesync.sync.audience import ReadingView
from audiencesync.sync.choices import AudienceChoice
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


_TIME_ZONE = (
    "the IANA time zone web pages show this user times in (e.g. Europe/Paris); null: UTC. "
    "Every timestamp of the API is ISO-8601 in UTC whatever it is"
)


class Me(_Out):
    name: str
    role: Role
    authenticated_by: Literal["session", "token"]
    time_zone: str | None = Field(default=None, description=_TIME_ZONE)


class MeUpdate(_In):
    time_zone: str | None = Field(
        default=None,
        description="an IANA time zone name (any case); null or empty: UTC. Left out: unchanged",
    )


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
    time_zone: str | None = Field(default=None, description=_TIME_ZONE)

    @classmethod
    def of(cls, view: UserView) -> UserPublic:
        return cls(
            name=view.name, role=view.role, created_at=view.created_at, time_zone=view.time_zone
        )


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


class UnificationPublic(_Out):
    """A unification: its sources (``DATASET:KEY`` in priority order), rules and the
    figures of its latest refresh (docs/unification.md, "Figures")."""

    name: str
    sources: list[str]
    rules: dict[str, Any]
    version: int
    stats: dict[str, Any]
    refreshed_at: datetime | None
    created_by: str
    updated_by: str

    @classmethod
    def of(cls, view: UnificationView) -> UnificationPublic:
        return cls(
            name=view.name,
            sources=[f"{s.dataset}:{s.key}" for s in view.sources],
            rules=view.rules,
            version=view.version,
            stats=view.stats,
            refreshed_at=view.refreshed_at,
            created_by=view.created_by,
            updated_by=view.updated_by,
        )


class UnificationCreate(_In):
    name: str
    sources: list[str] = Field(
        min_length=1, max_length=20, description="DATASET:KEY, highest priority first"
    )
    rules: Any = Field(default=None, description="the rules as JSON (docs/unification.md)")
    rules_text: str | None = Field(default=None, description="or the rules as YAML/JSON text")


class SourceRecordPublic(_Out):
    dataset: str
    key: str
    joined_by: str | None
    fields: dict[str, Any]


class SharedKeyPublic(_Out):
    rule: str
    records: list[str]
    shared_by: int
    refused: bool
    kept_apart: bool = Field(
        default=False,
        description="shared with records of other profiles: their group was above the "
        "cluster size limit, so its records were kept apart",
    )


class UnifiedExplanationPublic(_Out):
    name: str
    unified_id: int
    record_count: int
    records: list[SourceRecordPublic]
    links: list[SharedKeyPublic]
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, found: Explanation) -> UnifiedExplanationPublic:
        return cls(
            name=found.name,
            unified_id=found.unified_id,
            record_count=found.record_count,
            records=[
                SourceRecordPublic(
                    dataset=r.dataset, key=r.key, joined_by=r.joined_by, fields=r.fields
                )
                for r in found.records
            ],
            links=[
                SharedKeyPublic(
                    rule=link.rule,
                    records=[f"{d}:{k}" for d, k in link.records],
                    shared_by=link.shared_by,
                    refused=link.refused,
                    kept_apart=link.kept_apart,
                )
                for link in found.links
            ],
            history=list(found.history),
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
    source: str = Field(description="a source an administrator added (GET /sources)")
    table: str
    key: str


class SourceCreate(_In):
    name: str
    url: str = Field(
        description="database URL, e.g. postgresql://user:password@host/db; stored "
        "encrypted and never shown back"
    )


class SourcePublic(_Out):
    name: str
    backend: str
    location: str = Field(description="host[:port]/database or file path; no user, no password")
    created_at: datetime | None
    created_by: str | None
    datasets: list[str]

    @classmethod
    def of(cls, view: SourceView) -> SourcePublic:
        return cls(
            name=view.name,
            backend=view.backend,
            location=view.location,
            created_at=view.created_at,
            created_by=view.created_by,
            datasets=list(view.datasets),
        )


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


class AudienceChoicePublic(_Out):
    """A customer-list audience a connection can fill (``GET /connections/{name}/audiences``)."""

    id: str
    name: str
    ad_account_id: str
    ad_account_name: str
    approximate_number_users: int | None
    used_by: str | None = Field(description="the export already filling it; null when free")

    @classmethod
    def of(cls, choice: AudienceChoice) -> AudienceChoicePublic:
        return cls(
            id=choice.id,
            name=choice.name,
            ad_account_id=choice.ad_account_id,
            ad_account_name=choice.ad_account_name,
            approximate_number_users=choice.approximate_number_users,
            used_by=choice.used_by,
        )


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
    next_run_at: datetime | None = Field(
        description="when the export runs next: its own schedule's next time, or the system "
        "refresh's for exports that follow it; null when it does not run on a schedule"
    )
    schedule_words: str = Field(
        description="when it runs, in words: 'off: the system refresh is off', "
        "'daily at 03:00 Europe/London, next 2026-12-02 03:00 UTC'..."
    )
    identifiers_held: int | None = Field(
        description="identifiers confirmed in the audience (counted from the snapshot); "
        "null when not known (see identifiers_held_unknown)"
    )
    identifiers_held_unknown: str | None = Field(
        default=None, description="why identifiers_held is null, in plain words"
    )
    identifiers_held_at_reading: int | None = Field(
        default=None, description="identifiers held at the latest reading (its match rate's)"
    )
    approximate_number_users: int | None = Field(
        description="matched users Snapchat reported at the latest reading, once it "
        "completed; null while pending (see approximate_number_users_pending)"
    )
    approximate_number_users_pending: bool = Field(
        default=False,
        description="the matched size is pending: Snapchat is still matching, the reading "
        "failed, or the latest reading is older than an emptying (clear or replace) still "
        "in progress",
    )
    upload_status: str | None = Field(
        description="at the latest reading (null when it is older than an emptying in progress)"
    )
    targetable_status: str | None = Field(description="at the latest reading (as upload_status)")
    match_rate: float | None = Field(
        description="matched users / identifiers held at that reading, of a completed "
        "latest reading (null while Snapchat is still matching or when held was not known)"
    )
    audience_read_at: datetime | None = Field(description="when the audience was last read")
    next_audience_reading_at: datetime | None
    drift: dict[str, Any] | None = Field(
        description="set when the audience may have drifted: the rule, a sentence, the figures"
    )
    max_removal_share: float = Field(
        description="a mirror run removing more than this share of the identifiers held "
        "waits for approval (as does one whose segments became empty)"
    )
    alert_channels: list[str] = Field(default_factory=list)
    alert_events: list[str] = Field(default_factory=list)
    alert_reject_share: float | None = None
    consent_field: str | None = Field(
        default=None,
        description="field holding each profile's consent; only profiles with consent are "
        "sent, the others are removed (docs/privacy.md)",
    )
    consent_values: list[str] | None = Field(
        default=None,
        description="values of the consent field meaning consent (any case); empty: the "
        "field is true/false",
    )

    @classmethod
    def of(cls, view: ExportView) -> ExportPublic:
        a = view.audience
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
            schedule_words=view.schedule_words,
            identifiers_held=a.identifiers_held if a else None,
            identifiers_held_unknown=(a.held_unknown if a else None)
            if not (a and a.identifiers_held is not None)
            else None,
            identifiers_held_at_reading=(a.reported.identifiers_held if a and a.reported else None),
            approximate_number_users=a.approximate_number_users if a else None,
            approximate_number_users_pending=a.pending if a else False,
            upload_status=a.upload_status if a else None,
            targetable_status=a.targetable_status if a else None,
            match_rate=a.match_rate if a else None,
            audience_read_at=a.read_at if a else None,
            next_audience_reading_at=a.next_reading_at if a else None,
            drift=a.drift if a else None,
            max_removal_share=view.max_removal_share,
            alert_channels=list(view.alerts.channels),
            alert_events=list(view.alerts.events),
            alert_reject_share=view.alerts.reject_share_threshold,
            consent_field=view.consent_field,
            consent_values=list(view.consent_values),
        )


_ALERT_CHANNELS = "alert channels (names from /alerts/channels); [] for none"
_ALERT_EVENTS = "events to alert (see /alerts/events); omitted: all, or unchanged"
_ALERT_SHARE = "rejected share of identifier values (0..1) that raises reject_share"


class ReadingPublic(_Out):
    """One reading of an export's audience at Snapchat."""

    id: int
    run_id: int | None
    read_at: datetime
    trigger: str
    approximate_number_users: int | None
    upload_status: str | None
    targetable_status: str | None
    identifiers_held: int | None
    match_rate: float | None
    error: str | None
    drifted: bool

    @classmethod
    def of(cls, view: ReadingView) -> ReadingPublic:
        # The view's fields and its match_rate property, by name.
        return cls.model_validate(view, from_attributes=True)


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
    audience_description: str | None = Field(
        default=None, max_length=500, description="of a new audience (create_audience)"
    )
    retention_days: int = 9999
    ad_account_id: str | None = None
    mode: Literal["mirror", "add-only"] = "mirror"
    schedule: str = "system"
    timezone: str = "UTC"
    enabled: bool = True
    max_removal_share: float = Field(default=0.2, ge=0, le=1)
    alert_channels: list[str] | None = Field(default=None, description=_ALERT_CHANNELS)
    alert_events: list[str] | None = Field(default=None, description=_ALERT_EVENTS)
    alert_reject_share: float | None = Field(default=None, ge=0, le=1, description=_ALERT_SHARE)
    consent_field: str | None = Field(
        default=None,
        description="field holding each profile's consent; only profiles with consent are "
        "sent, the others are removed (docs/privacy.md)",
    )
    consent_values: list[str] = Field(
        default_factory=list,
        description="values of the consent field meaning consent (any case); empty: the "
        "field is true/false",
    )


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
    max_removal_share: float | None = Field(default=None, ge=0, le=1)
    alert_channels: list[str] | None = Field(default=None, description=_ALERT_CHANNELS)
    alert_events: list[str] | None = Field(default=None, description=_ALERT_EVENTS)
    alert_reject_share: float | None = Field(default=None, ge=0, le=1, description=_ALERT_SHARE)
    consent_field: str | None = Field(
        default=None,
        description="field holding each profile's consent; only profiles with consent are "
        "sent, the others are removed (docs/privacy.md)",
    )
    consent_values: list[str] | None = Field(
        default=None,
        description="values of the consent field meaning consent (any case); empty: the "
        "field is true/false",
    )


class ExportDuplicate(_In):
    new_name: str


class RunRequest(_In):
    full: bool = Field(default=False, description="re-send every identifier")
    replace: bool = Field(
        default=False,
        description="empty the audience first, then upload every current member "
        "(repairs an audience that drifted); needs confirm",
    )
    confirm: bool = Field(
        default=False, description="true: confirm a replace (it empties the Snapchat audience)"
    )


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
    replace: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    counts: dict[str, Any]
    progress: dict[str, Any]
    audience: dict[str, Any]
    errors: list[str]
    reject_samples: dict[str, Any]
    message: str | None = Field(
        default=None, description="the removal guard's sentence, when it held removals"
    )
    approves_run: int | None = Field(
        default=None, description="an approval run: the run whose held removals it sends"
    )

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
            replace=view.replace,
            queued_at=view.queued_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            seconds=view.seconds,
            counts=view.counts,
            progress=view.progress,
            audience=view.audience,
            errors=list(view.errors),
            reject_samples=view.reject_samples,
            message=view.message,
            approves_run=view.approves_run,
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
    words: str = Field(description="the schedule in words, as the UI and the CLI say it")

    @classmethod
    def of(cls, view: ScheduleView) -> SchedulePublic:
        return cls(
            words=view.words,
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


# --- alerts --------------------------------------------------------------------------


class AlertChannelCreate(_In):
    name: str = Field(max_length=100)
    url: str = Field(
        max_length=2000,
        description="notification URL in apprise's syntax (json://, mailto://, mailtos://, "
        "slack://, workflows:// ...); stored encrypted, never returned",
    )


class AlertChannelPublic(_Out):
    """A channel: its scheme and host only (the rest of the URL holds its secrets)."""

    name: str
    scheme: str
    host: str
    display: str
    exports: list[str]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, view: ChannelView) -> AlertChannelPublic:
        return cls(
            name=view.name,
            scheme=view.scheme,
            host=view.host,
            display=view.display,
            exports=list(view.exports),
            created_by=view.created_by,
            created_at=view.created_at,
        )


class AlertDeliveryPublic(_Out):
    id: int
    channel: str
    event: str
    export: str
    run_id: int | None
    title: str
    body: str
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, view: DeliveryView) -> AlertDeliveryPublic:
        # The same fields as the service's view: read them off it, not copied one by one.
        return cls.model_validate(view, from_attributes=True)
