"""Unified profiles: three sources matched into persons, measured against the truth.

The sources come from ``tests/unify_data.py`` (fixed seed, true persons known). Every
figure the unification reports is recomputed here from the data, independently of the
engine's SQL: pairs by enumeration in Python, identifiers by the scalar normalizer.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.errors import ConflictError, NotFoundError, PermissionDeniedError, UserInputError
from audiencesync.identifiers import hash_value
from audiencesync.profiles import linked, sources, store
from audiencesync.profiles.unify import service as unify
from audiencesync.profiles.unify.rules import load_unification_text
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import schedule, scheduler
from audiencesync.types import IdentifierType
from tests.conftest import make_actors
from tests.unify_data import PLACEHOLDER, RULES_YAML, Sources, generate, pairwise, people

KEYS = {"crm": "crm_id", "shop": "shop_id", "loyalty": "card"}
FROM = [unify.parse_source(f"{d}:{k}") for d, k in KEYS.items()]
SEED = 17
PERSONS = 800


@pytest.fixture
def admin(sqlite_ctx: Context) -> Actor:
    return make_actors(sqlite_ctx)[Role.ADMIN]


def load(ctx: Context, admin: Actor, data: Sources, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in data.write(folder).items():
        store.import_file(ctx, admin, path, key=KEYS[name], name=name)


def clusters_of(ctx: Context, admin: Actor, name: str) -> dict[tuple[str, str], int]:
    """(dataset, key) -> unified id, read from the link table the user can export."""
    target = ctx.home.parent / f"{name}-links.csv"
    unify.export_links(ctx, admin, name, target)
    with target.open() as handle:
        return {
            (r["dataset"], r["source_key"]): int(r["unified_id"]) for r in csv.DictReader(handle)
        }


def source_rows(data: Sources) -> dict[tuple[str, str], dict[str, str]]:
    rows = {}
    for name, key in KEYS.items():
        for row in getattr(data, name):
            rows[(name, row[key])] = row
    return rows


EMAIL_COLUMN = {"crm": "email_address", "shop": "mail", "loyalty": "e_mail"}
PHONE_COLUMN = {"crm": "mobile", "shop": "tel", "loyalty": "phone_no"}
CUSTOMER_COLUMN = {"crm": "cust_no", "loyalty": "member_of"}
NAME_POSTCODE = {"crm": ("last", "zip"), "shop": ("lname", "post"), "loyalty": ("surname", "pc")}


def _code(value: str) -> str | None:
    # str.split() splits on every Unicode space, as the product does (docs/unification.md).
    return "".join(unicodedata.normalize("NFC", value).split()).upper() or None


def _text(value: str) -> str | None:
    return " ".join(unicodedata.normalize("NFC", value).split()).lower() or None


def _email_key(source: str, row: dict[str, str]) -> object:
    return hash_value(IdentifierType.EMAIL, row[EMAIL_COLUMN[source]])


def _phone_key(source: str, row: dict[str, str]) -> object:
    return hash_value(IdentifierType.PHONE, row[PHONE_COLUMN[source]], default_country="GB")


def _customer_key(source: str, row: dict[str, str]) -> object:
    return _code(row[CUSTOMER_COLUMN[source]]) if source in CUSTOMER_COLUMN else None


def _name_postcode_key(source: str, row: dict[str, str]) -> object:
    last, postcode = (row[c] for c in NAME_POSTCODE[source])
    pair = (_text(last), _code(postcode))
    return pair if None not in pair else None


LINKED_RULES = {
    "email": _email_key,
    "phone": _phone_key,
    "customer_number": _customer_key,
    "last_name+postcode": _name_postcode_key,
}


def test_unified_clusters_match_the_true_persons(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    data = generate(people(PERSONS, SEED), SEED)
    load(ctx, admin, data, ctx.home.parent / "v1")
    view = unify.unify(ctx, admin, "people", sources=FROM, rules=load_unification_text(RULES_YAML))

    clusters = clusters_of(ctx, admin, "people")
    assert set(clusters) == set(data.truth)  # every source record has exactly one profile
    precision, recall, hits, predicted, actual = pairwise(clusters, data.truth)
    print(
        f"\nunification of {len(data.truth)} records of {PERSONS} persons: pairwise precision "
        f"{precision:.4f}, recall {recall:.4f} ({hits} of {predicted} predicted pairs true, "
        f"{hits} of {actual} true pairs found)"
    )
    assert precision >= 0.99
    assert recall >= 0.95

    stats = view.stats
    assert stats["source_records"] == {n: len(getattr(data, n)) for n in KEYS}
    assert stats["source_records_total"] == len(data.truth)
    sizes = Counter(clusters.values())
    assert stats["unified_profiles"] == len(sizes)
    assert store.get_dataset(ctx, admin, "people").row_count == len(sizes)
    assert stats["records_per_profile"]["max"] == max(sizes.values())
    assert stats["records_per_profile"]["mean"] == round(len(clusters) / len(sizes), 3)
    assert sum(stats["records_per_profile"]["distribution"].values()) == len(sizes)
    largest = stats["largest_clusters"][0]
    assert largest["records"] == max(sizes.values())
    assert sizes[largest["unified_id"]] == largest["records"]

    # Records linked by each rule, and invalid identifiers, recomputed in Python.
    rows = source_rows(data)
    keys_by_rule: dict[str, dict[tuple[str, str], object]] = {r: {} for r in LINKED_RULES}
    invalid = {"email": 0, "phone": 0}
    for record, row in rows.items():
        for rule, key_of in LINKED_RULES.items():
            found = key_of(record[0], row)
            if found is not None:
                keys_by_rule[rule][record] = found
        for field, kind, columns in (
            ("email", IdentifierType.EMAIL, EMAIL_COLUMN),
            ("phone", IdentifierType.PHONE, PHONE_COLUMN),
        ):
            value = row[columns[record[0]]]
            if value.strip() and hash_value(kind, value, default_country="GB") is None:
                invalid[field] += 1
    expected_linked = {}
    for rule, keyed in keys_by_rule.items():
        shared = Counter(keyed.values())
        expected_linked[rule] = sum(1 for k in keyed.values() if 2 <= shared[k] <= 20)
    assert stats["records_linked_by_rule"] == expected_linked
    assert stats["rejected_identifiers"] == invalid
    assert stats["history"] == {"created": len(sizes), "merged": 0, "split": 0, "removed": 0}

    # The placeholder email: one key, refused, and it joined nobody.
    placeholder = {
        record for record, row in rows.items()
        if row[EMAIL_COLUMN[record[0]]].strip().lower() == PLACEHOLDER
    }  # fmt: skip
    refused = stats["refused_keys"]
    assert refused["keys"] == 1
    assert refused["records"] == len(placeholder) > 20
    assert refused["largest"][0]["rule"] == "email"
    example = refused["largest"][0]["example"]
    assert (example["dataset"], example["key"]) in placeholder
    persons_in_cluster: dict[int, set[int]] = {}
    for record, cluster in clusters.items():
        persons_in_cluster.setdefault(cluster, set()).add(data.truth[record])
    shared_phone = {p.number for p in people(PERSONS, SEED)[:4]}  # the two households
    for record in placeholder:
        assert persons_in_cluster[clusters[record]] - shared_phone <= {data.truth[record]}

    # Each profile's email list holds every valid email of its records, once each, but
    # the refused placeholder, which is no one's identifier.
    con = duckdb.connect()
    path = ctx.storage.path(store.parquet_key(ctx, "people"))
    unified = {
        int(r[0]): r for r in con.execute(
            f"SELECT unified_id, email, record_count, first_name FROM read_parquet('{path}')"
        ).fetchall()
    }  # fmt: skip
    expected_emails: dict[int, set[str]] = {}
    for record, cluster in clusters.items():
        hashed = hash_value(IdentifierType.EMAIL, rows[record][EMAIL_COLUMN[record[0]]])
        if hashed is not None and hashed != hash_value(IdentifierType.EMAIL, PLACEHOLDER):
            expected_emails.setdefault(cluster, set()).add(hashed)
    for cluster, count in sizes.items():
        emails = unified[cluster][1] or []
        hashes = [hash_value(IdentifierType.EMAIL, e) for e in emails]
        assert len(hashes) == len(set(hashes))  # once each
        assert set(hashes) == expected_emails.get(cluster, set())
        assert unified[cluster][2] == count
    # first_name is most_recent: only the CRM has an updated_at, so its (title case)
    # value wins wherever a CRM record is in the profile.
    with_crm = {c for (d, _), c in clusters.items() if d == "crm"}
    assert all(unified[c][3].istitle() for c in with_crm)

    # Explained: one profile of several sources, and the rule that joined each record.
    found = unify.explain(ctx, admin, "people", largest["unified_id"])
    assert found.record_count == largest["records"]
    assert {(r.dataset, r.key) for r in found.records} == {
        k for k, c in clusters.items() if c == largest["unified_id"]
    }
    assert all(r.joined_by is not None for r in found.records)
    assert all(not link.refused for link in found.links if len(link.records) > 1)
    placeholder_profile = clusters[next(iter(sorted(placeholder)))]
    explained = unify.explain(ctx, admin, "people", placeholder_profile)
    assert any(link.refused and link.rule == "email" for link in explained.links)
    with pytest.raises(NotFoundError, match="has no profile 999999"):
        unify.explain(ctx, admin, "people", 999_999)

    # The unified dataset is a dataset: a segment over it counts like any other.
    segments.create_segment(
        ctx, admin, "several_sources", dataset="people",
        rules=parse_rules({"field": "record_count", "op": ">=", "value": 2}),
    )  # fmt: skip
    counted = segments.count_segment(ctx, admin, "several_sources")
    assert counted.size == sum(1 for n in sizes.values() if n >= 2)


def test_ids_stay_stable_when_records_join(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    persons = people(300, SEED)
    first = generate(persons, SEED)
    load(ctx, admin, first, ctx.home.parent / "v1")
    view = unify.unify(ctx, admin, "people", sources=FROM, rules=load_unification_text(RULES_YAML))
    before = clusters_of(ctx, admin, "people")
    first_new_id = max(before.values()) + 1

    # New records of the same people (other keys), and 50 new people, join.
    newcomers = people(50, SEED + 1, start=300)
    more = generate(persons + newcomers, SEED + 2, key_offset=100_000)
    combined = Sources(
        crm=first.crm + more.crm, shop=first.shop + more.shop, loyalty=first.loyalty + more.loyalty,
        truth={**first.truth, **more.truth},
    )  # fmt: skip
    load(ctx, admin, combined, ctx.home.parent / "v2")
    store.refresh(ctx, admin, "people")  # the dataset's refresh runs the unification again
    after = clusters_of(ctx, admin, "people")
    second = unify.get_unification(ctx, admin, "people")
    assert second.version == view.version + 1

    old_ids: dict[int, set[int]] = {}
    for record, cluster in after.items():
        if record in before:
            old_ids.setdefault(cluster, set()).add(before[record])
    merged = set()
    for cluster, ids in old_ids.items():
        assert cluster == min(ids)  # a person keeps their id; a merge keeps the smallest
        merged |= {(cluster, other) for other in ids if other != cluster}
    for cluster in after.values():
        if cluster not in old_ids:
            assert cluster >= first_new_id  # new people get new ids, never an old one
    history = second.stats["history"]
    assert history["merged"] == len(merged)
    assert history["created"] == len(set(after.values()) - set(old_ids))
    assert history["split"] == 0
    assert history["removed"] == len(set(before.values()) - set(after.values()) - {
        other for _, other in merged
    })  # fmt: skip
    precision, recall, *_ = pairwise(after, combined.truth)
    print(f"\nafter the refresh: precision {precision:.4f}, recall {recall:.4f}")


def _write(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


SMALL_RULES = """\
fields: {email: email, phone: phone}
match: [email, phone]
default_country: GB
"""


def test_merges_splits_and_removals_are_recorded(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    folder = ctx.home.parent / "small"
    folder.mkdir()
    crm = _write(folder / "crm.csv", "id,email,phone", "1,ann@example.com,", "2,bob@example.com,")
    shop = _write(folder / "shop.csv", "id,email,phone", "a,,07700 900123")
    store.import_file(ctx, admin, crm, key="id", name="crm")
    store.import_file(ctx, admin, shop, key="id", name="shop")
    sources = [unify.parse_source("crm:id"), unify.parse_source("shop:id")]
    unify.unify(ctx, admin, "small", sources=sources, rules=load_unification_text(SMALL_RULES))
    v1 = clusters_of(ctx, admin, "small")
    assert v1 == {("crm", "1"): 1, ("crm", "2"): 2, ("shop", "a"): 3}

    # A shop record with Ann's email and the phone joins Ann and shop:a: one person.
    _write(shop, "id,email,phone", "a,,07700 900123", "b, ANN@example.com,+44 7700 900123")
    store.refresh(ctx, admin, "shop")
    stats = unify.refresh(ctx, admin, "small").stats
    v2 = clusters_of(ctx, admin, "small")
    assert v2 == {("crm", "1"): 1, ("crm", "2"): 2, ("shop", "a"): 1, ("shop", "b"): 1}
    assert stats["history"] == {"created": 0, "merged": 1, "split": 0, "removed": 0}
    explained = unify.explain(ctx, admin, "small", 1)
    assert {r.key: r.joined_by for r in explained.records} == {"1": "email", "a": "phone",
                                                              "b": "email"}  # fmt: skip
    assert {"event": "merged", "unified_id": 1, "previous_id": 3} in explained.history

    # The linking record goes: the person splits again; the first record keeps id 1.
    _write(shop, "id,email,phone", "a,,07700 900123")
    store.refresh(ctx, admin, "shop")
    stats = unify.refresh(ctx, admin, "small").stats
    v3 = clusters_of(ctx, admin, "small")
    assert v3 == {("crm", "1"): 1, ("crm", "2"): 2, ("shop", "a"): 4}
    assert stats["history"] == {"created": 0, "merged": 0, "split": 1, "removed": 0}

    # Bob leaves the CRM: his id is retired, never given again.
    _write(crm, "id,email,phone", "1,ann@example.com,")
    store.refresh(ctx, admin, "crm")
    stats = unify.refresh(ctx, admin, "small").stats
    assert clusters_of(ctx, admin, "small") == {("crm", "1"): 1, ("shop", "a"): 4}
    assert stats["history"]["removed"] == 1
    _write(crm, "id,email,phone", "1,ann@example.com,", "3,cy@example.com,")
    store.refresh(ctx, admin, "crm")
    unify.refresh(ctx, admin, "small")
    assert clusters_of(ctx, admin, "small")[("crm", "3")] == 5


def test_a_cluster_above_the_limit_is_kept_apart(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    folder = ctx.home.parent / "chain"
    folder.mkdir()
    # A chain: record i shares an email with i+1 and a phone with i-1; 12 records.
    rows = [f"{i},p{i // 2}@example.com,07700 9{(i + 1) // 2:05d}" for i in range(12)]
    _write(folder / "crm.csv", "id,email,phone", *rows)
    store.import_file(ctx, admin, folder / "crm.csv", key="id", name="crm")
    rules = load_unification_text(SMALL_RULES + "limits: {max_cluster_size: 5}\n")
    view = unify.unify(ctx, admin, "chain", sources=[unify.parse_source("crm:id")], rules=rules)
    assert view.stats["oversized_clusters"][0]["records"] == 12
    assert view.stats["unified_profiles"] == 12  # not merged: each record stays apart
    assert len(set(clusters_of(ctx, admin, "chain").values())) == 12
    # explain says why a record of that group stands alone: its keys join other profiles.
    alone = unify.explain(
        ctx, admin, "chain", next(iter(clusters_of(ctx, admin, "chain").values()))
    )
    assert alone.links
    assert all(link.kept_apart and not link.refused for link in alone.links)
    assert {link.shared_by for link in alone.links} <= {2}
    loose = load_unification_text(SMALL_RULES)
    view = unify.unify(ctx, admin, "chain", sources=[unify.parse_source("crm:id")], rules=loose)
    assert view.stats["unified_profiles"] == 1
    assert view.stats["oversized_clusters"] == []


REFUSED_RULES = [
    ("fields: {email: email}\nmatch: [phone]\n", "not a common field"),
    ("fields: {email: email}\nmatch: [email]\nsurvivorship: {email: newest}\n", "survivorship"),
    ("fields: {email: mail}\nmatch: [email]\n", "fields.email"),
    ("fields: {email: email}\nmatch: []\n", "match"),
    ("fields: {email: email}\nmatch: [email]\ndefault_country: UK\n", "the United Kingdom is GB"),
    ("fields: {unified_id: text}\nmatch: [unified_id]\n", "cannot name a common field"),
    ("a: &x [1]\nb: *x\n", "anchors"),
    ("fields: {email: email}\nmatch: [email]\nlimits: {max_records_per_key: 1}\n", "limits"),
    ("- 1\n", "write a map"),
    ("fields: {email: email}\nmatch: [[email, email]]\n", "names a field twice"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED_RULES)
def test_bad_rules_are_refused_in_one_sentence(text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        load_unification_text(text)


def test_bad_definitions_leave_nothing_behind(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    folder = ctx.home.parent / "bad"
    folder.mkdir()
    _write(folder / "crm.csv", "id,email", "1,a@example.com")
    store.import_file(ctx, admin, folder / "crm.csv", key="id", name="crm")
    rules = load_unification_text("fields: {email: email}\nmatch: [email]\n")
    cases = [
        (["crm"], UserInputError, "is not DATASET:KEY"),
        (["nope:id"], NotFoundError, "no profile dataset named 'nope'"),
        (["crm:key"], UserInputError, "has no key column 'key'"),
        (["crm:id", "crm:id"], UserInputError, "given twice"),
    ]
    for specs, error, message in cases:
        with pytest.raises(error, match=message):
            unify.unify(ctx, admin, "u", sources=[unify.parse_source(s) for s in specs],
                        rules=rules)  # fmt: skip
    mapped = load_unification_text(
        "fields: {email: email}\nsources: {crm: {fields: {email: mail}}}\nmatch: [email]\n"
    )
    with pytest.raises(UserInputError, match="column 'mail', which it does not have"):
        unify.unify(ctx, admin, "u", sources=[unify.parse_source("crm:id")], rules=mapped)
    _write(folder / "other.csv", "id,email", "1,a@example.com")
    store.import_file(ctx, admin, folder / "other.csv", key="id", name="u")
    with pytest.raises(ConflictError, match="already a dataset"):
        unify.unify(ctx, admin, "u", sources=[unify.parse_source("crm:id")], rules=rules)
    assert unify.list_unifications(ctx, admin) == []
    assert not (ctx.home / "unified").exists() or not any((ctx.home / "unified").rglob("*.parquet"))
    viewer = make_viewer(ctx)
    with pytest.raises(PermissionDeniedError):
        unify.unify(ctx, viewer, "v", sources=[unify.parse_source("crm:id")], rules=rules)


def make_viewer(ctx: Context) -> Actor:
    return users.resolve_actor(ctx, "victor")


def test_sources_stay_while_used_and_removal_takes_the_files(
    sqlite_ctx: Context, admin: Actor
) -> None:
    ctx = sqlite_ctx
    folder = ctx.home.parent / "rm"
    folder.mkdir()
    _write(folder / "crm.csv", "id,email", "1,a@example.com", "2,A@example.com ")
    store.import_file(ctx, admin, folder / "crm.csv", key="id", name="crm")
    rules = load_unification_text("fields: {email: email}\nmatch: [email]\n")
    unify.unify(ctx, admin, "people", sources=[unify.parse_source("crm:id")], rules=rules)
    assert store.get_dataset(ctx, admin, "people").row_count == 1
    with pytest.raises(ConflictError, match="source of unification"):
        store.remove(ctx, admin, "crm")
    store.remove(ctx, admin, "people")
    assert unify.list_unifications(ctx, admin) == []
    assert not (ctx.home / "unified" / "people").exists()
    store.remove(ctx, admin, "crm")


def test_the_system_refresh_unifies_after_sources_and_before_segments(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    folder = ctx.home.parent / "sched"
    folder.mkdir()
    crm = _write(folder / "crm.csv", "id,email", "1,a@example.com")
    shop = _write(folder / "shop.csv", "id,email", "x,b@example.com")
    store.import_file(ctx, admin, crm, key="id", name="crm")
    store.import_file(ctx, admin, shop, key="id", name="shop")
    rules = load_unification_text("fields: {email: email}\nmatch: [email]\n")
    sources = [unify.parse_source("crm:id"), unify.parse_source("shop:id")]
    unify.unify(ctx, admin, "people", sources=sources, rules=rules)
    segments.create_segment(
        ctx, admin, "both", dataset="people",
        rules=parse_rules({"field": "record_count", "op": ">=", "value": 2}),
    )  # fmt: skip
    assert segments.count_segment(ctx, admin, "both").size == 0
    _write(shop, "id,email", "x,b@example.com", "y, A@EXAMPLE.COM")  # the CRM person shops

    schedule.set_schedule(ctx, admin, enabled=True, cron="0 3 * * *", timezone="UTC")
    fired = scheduler.tick(ctx, datetime.now(UTC) + timedelta(days=2))
    assert fired.system_fired, fired.problems
    assert fired.refreshed == ["crm", "shop", "people"]
    assert fired.evaluated == ["both"]
    assert segments.count_segment(ctx, admin, "both").size == 1


def test_a_linked_table_is_a_source_too(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    folder = ctx.home.parent / "linked"
    folder.mkdir()
    database = folder / "shop.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(
            "CREATE TABLE buyers AS SELECT * FROM (VALUES ('x', ' ANN@example.com', 3), "
            "('y', 'zed@example.com', 1)) AS t(buyer, mail, orders)"
        )
    sources.add_source(ctx, admin, "shopdb", url=f"duckdb:///{database}")
    linked.link(ctx, admin, "shop", source="shopdb", table="buyers", key="buyer")
    _write(folder / "crm.csv", "id,email", "1,ann@example.com", "2,bob@example.com")
    store.import_file(ctx, admin, folder / "crm.csv", key="id", name="crm")
    rules = load_unification_text(
        "fields: {email: email, orders: value}\nsources: {shop: {fields: {email: mail}}}\n"
        "match: [email]\n"
    )
    froms = [unify.parse_source("crm:id"), unify.parse_source("shop:buyer")]
    view = unify.unify(ctx, admin, "people", sources=froms, rules=rules)
    assert view.stats["source_records"] == {"crm": 2, "shop": 2}
    clusters = clusters_of(ctx, admin, "people")
    assert clusters[("crm", "1")] == clusters[("shop", "x")]
    assert len(set(clusters.values())) == 3
    found = unify.explain(ctx, admin, "people", clusters[("shop", "x")])
    assert {r.key: r.fields.get("orders") for r in found.records} == {"1": None, "x": 3}


# --- regressions (review of issue 17) ---------------------------------------------------


def _import_rows(ctx: Context, admin: Actor, name: str, rows: list[dict[str, str]]) -> None:
    folder = ctx.home.parent / "rows"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    store.import_file(ctx, admin, path, key="id", name=name)


def _oracle_groups(
    records: dict[tuple[str, str], dict[str, str]],
    rules: list[tuple[str, ...]],
    kinds: dict[str, str],
) -> set[frozenset[tuple[str, str]]]:
    """Connected components by union-find in Python: records sharing a rule's full key.
    Normalized by _code/_text: every Unicode space, NFC, as the product documents."""
    parent = {record: record for record in records}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rule in rules:
        first: dict[tuple[str | None, ...], tuple[str, str]] = {}
        for record, row in records.items():
            key = tuple((_code if kinds[f] == "code" else _text)(row.get(f, "")) for f in rule)
            if None in key:
                continue
            if key in first:
                parent[find(record)] = find(first[key])
            else:
                first[key] = record
    found: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for record in records:
        found.setdefault(find(record), set()).add(record)
    return {frozenset(g) for g in found.values()}


def _groups(clusters: dict[tuple[str, str], int]) -> set[frozenset[tuple[str, str]]]:
    found: dict[int, set[tuple[str, str]]] = {}
    for record, uid in clusters.items():
        found.setdefault(uid, set()).add(record)
    return {frozenset(g) for g in found.values()}


def test_most_frequent_takes_the_value_most_records_hold(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    # Ann: 'Lee' in the first-priority source once, 'Li' in the two others.
    crm = [{"id": "c-ann", "email": "ann@example.com", "last_name": "Lee"}]
    shop = [{"id": f"s{i}", "email": f"x{i}@example.com", "last_name": "Other"} for i in range(5)]
    shop.append({"id": "s-ann", "email": "ann@example.com", "last_name": "Li"})
    loyalty = [{"id": "l-ann", "email": "ann@example.com", "last_name": "Li"}]
    for name, rows in (("crm", crm), ("shop", shop), ("loyalty", loyalty)):
        _import_rows(ctx, admin, name, rows)
    rules = load_unification_text(
        "fields: {email: email, last_name: text}\nmatch: [email]\n"
        "survivorship: {last_name: most_frequent}\n"
    )
    froms = [unify.parse_source(f"{n}:id") for n in ("crm", "shop", "loyalty")]
    unify.unify(ctx, admin, "people", sources=froms, rules=rules)
    anns = [r["last_name"] for r in crm + shop + loyalty if r["email"] == "ann@example.com"]
    expected = Counter(anns).most_common(1)[0][0]
    path = ctx.storage.path(store.parquet_key(ctx, "people"))
    got = duckdb.sql(
        f"SELECT last_name FROM read_parquet('{path}') WHERE record_count = 3"
    ).fetchall()
    assert got == [(expected,)] == [("Li",)]


CHAIN_RULES = """\
fields: {a: code, b: code}
match: [a, b]
limits: {max_records_per_key: 100, max_cluster_size: 100000}
"""


def _chain(ctx: Context, admin: Actor, n: int) -> dict[tuple[str, str], dict[str, str]]:
    # record i shares code a with one neighbour and b with the other; random file order.
    order = list(range(n))
    random.Random(n).shuffle(order)
    rows = [{"id": f"r{i}", "a": f"A{i // 2}", "b": f"B{(i + 1) // 2}"} for i in order]
    _import_rows(ctx, admin, "chain", rows)
    return {("chain", r["id"]): r for r in rows}


@pytest.mark.parametrize("n", [200, 1000])
def test_long_chains_in_random_order_settle(sqlite_ctx: Context, admin: Actor, n: int) -> None:
    ctx = sqlite_ctx
    records = _chain(ctx, admin, n)
    view = unify.unify(
        ctx, admin, "people", sources=[unify.parse_source("chain:id")],
        rules=load_unification_text(CHAIN_RULES),
    )  # fmt: skip
    truth = _oracle_groups(records, [("a",), ("b",)], {"a": "code", "b": "code"})
    assert len(truth) == 1
    assert _groups(clusters_of(ctx, admin, "people")) == truth
    assert view.stats["unsettled_records"] == 0
    assert view.stats["rounds"] <= 20  # logarithmic, not one round per link


def test_at_the_round_cap_unsettled_records_are_kept_apart(
    sqlite_ctx: Context, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencesync.profiles.unify import matching

    ctx = sqlite_ctx
    records = _chain(ctx, admin, 200)
    monkeypatch.setattr(matching, "MAX_ROUNDS", 1)
    view = unify.unify(
        ctx, admin, "people", sources=[unify.parse_source("chain:id")],
        rules=load_unification_text(CHAIN_RULES),
    )  # fmt: skip
    clusters = clusters_of(ctx, admin, "people")
    assert set(clusters) == set(records)  # every record has a profile; the run completed
    assert view.stats["unsettled_records"] > 0
    assert view.stats["unified_profiles"] == len(set(clusters.values())) > 1
    # Never a false merge: every profile lies inside one true component.
    truth = _oracle_groups(records, [("a",), ("b",)], {"a": "code", "b": "code"})
    assert all(any(g <= t for t in truth) for g in _groups(clusters))


NBSP, IDEOGRAPHIC = "\u00a0", "\u3000"


def test_values_made_of_unicode_spaces_match_nothing(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    crm = [
        {"id": "c1", "cust": NBSP, "last": "Lee", "post": f"{IDEOGRAPHIC}\t"},
        {"id": "c2", "cust": NBSP, "last": "Lee", "post": NBSP},
        {"id": "c3", "cust": IDEOGRAPHIC, "last": f"{NBSP}\u2009", "post": "AB1 2CD"},
        {"id": "c4", "cust": f"{IDEOGRAPHIC} ", "last": "\u2028", "post": "AB1 2CD"},
        {"id": "c7", "cust": f"x{NBSP}99", "last": "", "post": ""},
        {"id": "c8", "cust": "", "last": "M\u00fcller", "post": "zz1 1zz"},
    ]
    shop = [
        {"id": "s7", "cust": "X99", "last": "", "post": ""},
        {"id": "s8", "cust": "", "last": f"Mu\u0308ller{IDEOGRAPHIC}", "post": "ZZ11ZZ"},
        {"id": "s9", "cust": "", "last": "MÜLLER ", "post": f"ZZ1{NBSP}1ZZ"},
    ]
    _import_rows(ctx, admin, "crm", crm)
    _import_rows(ctx, admin, "shop", shop)
    rules = load_unification_text(
        "fields: {cust: code, last: text, post: code}\nmatch: [cust, [last, post]]\n"
    )
    froms = [unify.parse_source("crm:id"), unify.parse_source("shop:id")]
    unify.unify(ctx, admin, "people", sources=froms, rules=rules)
    records = {("crm", r["id"]): r for r in crm} | {("shop", r["id"]): r for r in shop}
    truth = _oracle_groups(records, [("cust",), ("last", "post")], {
        "cust": "code", "last": "text", "post": "code"})  # fmt: skip
    assert _groups(clusters_of(ctx, admin, "people")) == truth
    joined = sorted(sorted(g) for g in truth if len(g) > 1)
    assert joined == [
        [("crm", "c7"), ("shop", "s7")],
        [("crm", "c8"), ("shop", "s8"), ("shop", "s9")],
    ]


def test_refused_keys_count_distinct_records(sqlite_ctx: Context, admin: Actor) -> None:
    ctx = sqlite_ctx
    rows = [
        {"id": f"c{i}", "email": "noreply@example.com", "phone": "07700 900000"} for i in range(4)
    ] + [{"id": "c9", "email": "ann@example.com", "phone": "07700 900123"}]
    _import_rows(ctx, admin, "crm", rows)
    rules = load_unification_text(SMALL_RULES + "limits: {max_records_per_key: 3}\n")
    view = unify.unify(ctx, admin, "people", sources=[unify.parse_source("crm:id")], rules=rules)
    shared = Counter(r["email"] for r in rows) + Counter(r["phone"] for r in rows)
    holders = {r["id"] for r in rows if shared[r["email"]] > 3 or shared[r["phone"]] > 3}
    assert view.stats["refused_keys"]["keys"] == 2
    assert view.stats["refused_keys"]["records"] == len(holders) == 4
    assert view.stats["unified_profiles"] == len(rows)


def test_a_placeholder_shared_by_dozens_is_refused_by_default(
    sqlite_ctx: Context, admin: Actor
) -> None:
    ctx = sqlite_ctx
    people = 60
    rows = [{"id": f"c{i}", "email": "noreply@example.com", "code": ""} for i in range(people)]
    # A code 12 records share: below the default limit, so it joins them, and is reported.
    for row in rows[:12]:
        row["code"] = "SHOP-1"
    _import_rows(ctx, admin, "crm", rows)
    rules = load_unification_text("fields: {email: email, code: code}\nmatch: [email, code]\n")
    view = unify.unify(ctx, admin, "people", sources=[unify.parse_source("crm:id")], rules=rules)
    assert view.stats["refused_keys"]["keys"] == 1
    assert view.stats["refused_keys"]["records"] == people
    assert view.stats["unified_profiles"] == people - 12 + 1
    near = view.stats["keys_near_limit"]
    assert near["above"] == 10
    assert [(k["rule"], k["records"]) for k in near["largest"]] == [("code", 12)]
