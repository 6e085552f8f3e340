"""An export over a unified dataset: every identifier of each person, from every source,
sent once; the emulator's audience is the expected set, computed from the sources."""

from __future__ import annotations

from pathlib import Path

import duckdb

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.profiles.unify import service as unify
from audiencesync.profiles.unify.rules import load_unification_text
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect
from tests.unify_data import RULES_YAML, generate, people

EMAIL = "EMAIL_SHA256"
PHONE = "PHONE_SHA256"
KEYS = {"crm": "crm_id", "shop": "shop_id", "loyalty": "card"}
EMAILS = {"crm": "email_address", "shop": "mail", "loyalty": "e_mail"}
PHONES = {"crm": "mobile", "shop": "tel", "loyalty": "phone_no"}


def test_an_export_sends_each_persons_identifiers_from_every_source_once(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap", share=True)
    data = generate(people(120, 5), 5)
    for name, path in data.write(tmp_path).items():
        store.import_file(ctx, admin, path, key=KEYS[name], name=name)
    sources = [unify.parse_source(f"{d}:{k}") for d, k in KEYS.items()]
    unify.unify(ctx, admin, "people", sources=sources, rules=load_unification_text(RULES_YAML))
    segments.create_segment(
        ctx, admin, "everyone", dataset="people",
        rules=parse_rules({"field": "unified_id", "op": "is not null"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("Unified customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="unified", connection="Snap", segments=("everyone",),
                   email_field="email", phone_field="phone", default_country="GB",
                   audience_id=audience),
    )  # fmt: skip

    view = runs.run_now(ctx, admin, "unified")
    assert view.status == "succeeded", view.errors

    # Expected: every valid email and phone of every source record, as Snapchat hashes.
    emails: set[str] = set()
    phones: set[str] = set()
    per_person: dict[int, set[str]] = {}
    links = unify.links_file(ctx, admin, "people")
    with duckdb.connect() as con:
        cluster = {
            (d, k): int(u)
            for u, d, k in con.execute(
                f"SELECT unified_id, dataset, skey FROM read_parquet('{links}')"
            ).fetchall()
        }
    for name in KEYS:
        for row in getattr(data, name):
            for column, kind, found in (
                (EMAILS[name], IdentifierType.EMAIL, emails),
                (PHONES[name], IdentifierType.PHONE, phones),
            ):
                hashed = hash_value(kind, row[column], default_country="GB")
                if hashed is not None:
                    found.add(hashed)
                    if kind is IdentifierType.EMAIL:
                        per_person.setdefault(cluster[(name, row[KEYS[name]])], set()).add(hashed)
    assert emulator.members(audience, EMAIL) == emails
    assert emulator.members(audience, PHONE) == phones
    profiles = store.get_dataset(ctx, admin, "people").row_count
    counts = view.counts
    assert counts["members"] == profiles
    # Each person's list holds each of their emails once (from whichever sources): what
    # is accepted is one value per (person, email); a placeholder shared by several
    # people is in each of their lists, and sent once.
    assert counts["added"] == {"email": len(emails), "phone": len(phones)}
    assert counts["accepted"]["email"] == sum(len(v) for v in per_person.values())
    assert counts["values"]["email"] == counts["accepted"]["email"]
    assert counts["values_present"]["email"] == len(per_person)
    assert counts["values_present"]["email"] + counts["empty"]["email"] == profiles

    # A second run sends nothing: the same identifiers, already confirmed.
    again = runs.run_now(ctx, admin, "unified")
    assert again.status == "succeeded", again.errors
    assert again.counts["added"] == {}
    assert sum(again.counts["planned_adds"].values()) == 0
