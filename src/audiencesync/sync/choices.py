"""What the export form offers to pick rather than type.

- :func:`list_audiences`: the customer-list audiences the connection's ad accounts hold,
  read from Snapchat, with the export already using each (one export per audience).
- :func:`suggest_fields`: the columns that look like an email, a phone or a mobile ad id,
  by name first, then by their values.
- :func:`preview_fields`: for the mapped columns, a few normalized values and the share of
  the sampled values that would be empty or rejected, before the export is saved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Export
from audiencesync.errors import UserInputError
from audiencesync.identifiers import Normalized, RejectReason, normalize
from audiencesync.profiles import store
from audiencesync.segments.source import open_source
from audiencesync.sync.destinations import open_destination
from audiencesync.sync.exports import FIRST_PARTY, usable_connection
from audiencesync.types import IdentifierType

#: the most audiences one search returns (an ad account may hold thousands).
MAX_AUDIENCES = 200
#: rows read to suggest and preview fields.
SAMPLE_ROWS = 1000
#: normalized values a preview shows per field.
PREVIEW_VALUES = 3
#: the smallest share of a column's sampled values that must read as one kind to suggest it.
VALUE_SHARE = 0.8

KIND_WORDS = {
    IdentifierType.EMAIL: "Email",
    IdentifierType.PHONE: "Phone",
    IdentifierType.MAID: "Mobile ad id",
}
FIELD_OF = {
    IdentifierType.EMAIL: "email_field",
    IdentifierType.PHONE: "phone_field",
    IdentifierType.MAID: "maid_field",
}
_NAMES = {
    IdentifierType.EMAIL: re.compile(r"e[-_ ]?mail"),
    IdentifierType.PHONE: re.compile(r"phone|mobile(?!.*(ad|id))|msisdn|cell|tel(ephone)?\b"),
    IdentifierType.MAID: re.compile(
        r"maid|idfa|gaid|aaid|adid|ad[-_ ]id|advertising[-_ ]id|device[-_ ]id|mobile[-_ ]ad"
    ),
}


@dataclass(frozen=True)
class AudienceChoice:
    """A customer-list audience the connection can fill."""

    id: str
    name: str
    ad_account_id: str
    ad_account_name: str
    approximate_number_users: int | None
    #: the export already filling it (None: free).
    used_by: str | None


def list_audiences(
    ctx: Context,
    actor: Actor,
    connection: str,
    *,
    search: str | None = None,
    ad_account_id: str | None = None,
) -> list[AudienceChoice]:
    """The customer lists of the connection's ad accounts, read from Snapchat now.

    ``search`` keeps those whose name or id holds it (any case); ``ad_account_id`` one
    account's. At most :data:`MAX_AUDIENCES`, by ad account then name.
    """
    require(actor, Action.EDIT_EXPORTS)
    with ctx.db.session() as session:
        row = usable_connection(session, actor, connection)
        accounts = {a["id"]: a["name"] for a in row.ad_accounts}
        used: dict[str, str] = {
            str(audience): str(name)
            for audience, name in session.execute(select(Export.audience_id, Export.name))
        }
    if ad_account_id is not None and ad_account_id not in accounts:
        raise UserInputError(
            f"connection {connection!r} does not reach ad account {ad_account_id}.",
            field="ad_account_id",
        )
    wanted = [ad_account_id] if ad_account_id else sorted(accounts, key=accounts.__getitem__)
    needle = (search or "").strip().lower()
    found: list[AudienceChoice] = []
    destination = open_destination(ctx, row)
    try:
        for account in wanted:
            for audience in sorted(destination.list_audiences(account), key=lambda a: a.name):
                if audience.source_type.upper() != FIRST_PARTY:
                    continue
                if needle and needle not in audience.name.lower() and needle != audience.id:
                    continue
                found.append(
                    AudienceChoice(
                        id=audience.id, name=audience.name, ad_account_id=account,
                        ad_account_name=accounts[account],
                        approximate_number_users=audience.approximate_number_users,
                        used_by=used.get(audience.id),
                    )
                )  # fmt: skip
                if len(found) >= MAX_AUDIENCES:
                    return found
    finally:
        destination.close()
    return found


def _looks_like(kind: IdentifierType, values: list[str]) -> float:
    if not values:
        return 0.0
    readable = values
    if kind is IdentifierType.PHONE:
        # Without a default country only +-written numbers read; digits alone may be ids.
        readable = [v for v in values if v.strip().startswith("+")]
    accepted = sum(isinstance(normalize(kind, v, raw=True), Normalized) for v in readable)
    return accepted / len(values)


def suggest_fields(ctx: Context, actor: Actor, dataset: str) -> dict[str, str]:
    """``{"email_field": column, ...}`` for the columns that look like each identifier.

    A column named like one (``email``, ``e_mail``, ``phone``, ``mobile``, ``idfa``,
    ``gaid``, ``maid``...) wins; otherwise the text column whose sampled values read as
    that kind for at least 80% of the values present. Each column maps one kind at most.
    """
    require(actor, Action.READ)
    view = store.get_dataset(ctx, actor, dataset)
    names = [c.name for c in view.columns if c.name != view.key_column or "mail" in c.name]
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for kind in (IdentifierType.MAID, IdentifierType.EMAIL, IdentifierType.PHONE):
        for name in names:
            if name not in taken and _NAMES[kind].search(name.lower()):
                chosen[FIELD_OF[kind]] = name
                taken.add(name)
                break
    missing = [k for k in IdentifierType if FIELD_OF[k] not in chosen]
    text = [c.name for c in view.columns if c.name not in taken and "VARCHAR" in c.type.upper()]
    if not missing or not text:
        return chosen
    with open_source(ctx, dataset) as source:
        table = source.table.select(*text).limit(SAMPLE_ROWS).to_pyarrow()
    for kind in missing:
        best, share = None, 0.0
        for name in text:
            if name in taken:
                continue
            values = [v for v in table.column(name).to_pylist() if isinstance(v, str) and v]
            reading = _looks_like(kind, values)
            if reading > share:
                best, share = name, reading
        if best is not None and share >= VALUE_SHARE:
            chosen[FIELD_OF[kind]] = best
            taken.add(best)
    return chosen


@dataclass(frozen=True)
class FieldPreview:
    """One mapped field read on a sample: what a run would send and reject."""

    kind: str
    words: str
    column: str
    sampled: int
    empty: int
    rejected: int
    #: of the values present.
    rejected_share: float
    reasons: dict[str, int]
    #: a few normalized values, as they are hashed (shown on the form, never in the API).
    samples: tuple[str, ...]


def preview_fields(
    ctx: Context,
    actor: Actor,
    dataset: str,
    mapping: dict[str, str | None],
    *,
    default_country: str | None = None,
) -> list[FieldPreview]:
    """Normalize a sample of each mapped column: samples, empty and rejected counts."""
    require(actor, Action.READ)
    view = store.get_dataset(ctx, actor, dataset)
    columns = {c.name for c in view.columns}
    kinds = {
        kind: mapping.get(FIELD_OF[kind])
        for kind in IdentifierType
        if mapping.get(FIELD_OF[kind]) in columns
    }
    if not kinds:
        return []
    country = default_country.upper() if default_country and len(default_country) == 2 else None
    with open_source(ctx, dataset) as source:
        wanted = list(dict.fromkeys(str(c) for c in kinds.values()))
        table = source.table.select(*wanted).limit(SAMPLE_ROWS).to_pyarrow()
    previews = []
    for kind, column in kinds.items():
        assert column is not None
        values = table.column(column).cast("string").to_pylist()
        empty = rejected = 0
        reasons: dict[str, int] = {}
        samples: list[str] = []
        for value in values:
            try:
                outcome = normalize(kind, value, default_country=country)
            except UserInputError:
                outcome = normalize(kind, value)
            if isinstance(outcome, Normalized):
                if len(samples) < PREVIEW_VALUES and outcome.value not in samples:
                    samples.append(outcome.value)
                continue
            if outcome.reason is RejectReason.EMPTY:
                empty += 1
                continue
            rejected += 1
            reasons[str(outcome.reason)] = reasons.get(str(outcome.reason), 0) + 1
        present = len(values) - empty
        previews.append(
            FieldPreview(
                kind=kind.value, words=KIND_WORDS[kind], column=column, sampled=len(values),
                empty=empty, rejected=rejected,
                rejected_share=rejected / present if present else 0.0, reasons=reasons,
                samples=tuple(samples),
            )
        )  # fmt: skip
    return previews
