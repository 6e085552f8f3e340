"""Matching records of several sources into persons, in DuckDB, set at a time.

1. ``records``: every source record (one row per record, ``rec`` numbered by source then
   key) with its common fields, read straight from the sources' Parquet files.
2. Identifier fields (email, phone, maid) are normalized and SHA-256 hashed by
   ``identifiers.hash_batch`` in Arrow batches: two records match on an email exactly
   when Snapchat would receive the same hash for both. Text fields are normalized in SQL.
3. Each match rule gives keys (one value, or a conjunction of values); a key shared by
   two records or more links them. A key shared by more than ``max_records_per_key``
   records (a placeholder email such as ``noreply@...``, a ``0000000000`` phone) is
   refused: it links nothing and is reported.
4. Connected components over the bipartite record-key graph by label propagation in SQL:
   each key takes the smallest label of its records, each record the smallest label of
   its keys, and each label jumps to its own label (pointer jumping), until nothing
   changes. No Python loop over records; the number of rounds grows with the logarithm of
   the longest chain of links.
5. A component larger than ``max_cluster_size`` is not merged: its records stay apart,
   and it is reported with the keys that joined most of it.
6. Stable ids: a component keeps the smallest previous unified id among those it holds
   most of the records of; other components get new ids (never reused). Merges, splits,
   new and removed ids are written to the history.
7. The unified profiles: one row per unified id with each field chosen by its
   survivorship rule (``all_values``: a list, one value per distinct normalized value).

Nothing here touches the control database: the service (``service.py``) gives the
inputs and records the outputs.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audiencesync import duck
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.identifiers import RejectReason, hash_batch
from audiencesync.logs import redact
from audiencesync.profiles.unify.rules import (
    RECORD_COUNT,
    SOURCE_DATASETS,
    UNIFIED_ID,
    FieldKind,
    Survivorship,
    UnificationRules,
)

log = logging.getLogger(__name__)

#: Rows per Arrow batch when identifiers are hashed.
HASH_BATCH_ROWS = 200_000
#: Label propagation stops after this many rounds (with hooking and full pointer jumping
#: it needs a few rounds, growing with the logarithm of the longest chain); records still
#: moving then are kept apart and counted in ``unsettled_records``.
MAX_ROUNDS = 64
#: How many of the largest clusters, refused keys and oversized clusters stats list.
TOP = 10
#: An ``@`` between two characters, or seven digits or more and nothing but phone
#: punctuation: an identifier, not a key (as ``sync.engine.sample_key`` decides).
_EMAIL_LIKE = re.compile(r"[^@\s]@[^@\s]")
_PHONE_CHARS = re.compile(r"[\d\s().+-]+")
#: RE2 (DuckDB's regexp engine) class of exactly the characters Python's str.isspace() accepts.
_SPACES = r"[\s\x{0B}\x{1C}-\x{1F}\x{85}\p{Z}]+"
#: rec = (source index << _REC_BITS) + row number in the source's file + 1.
_REC_BITS = 40
#: kid = first record * MAX_MATCH_RULES_ID + rule number (rules are fewer than this).
MAX_MATCH_RULES_ID = 32
#: Separator of the values of a conjunction key (a unit separator: never in real text).
_SEP = "\x1f"

RECORDS_FILE = "records.parquet"
KEYS_FILE = "keys.parquet"
HISTORY_FILE = "history.parquet"


@dataclass(frozen=True)
class SourceInput:
    """One source: its dataset name, key column, Parquet file and column mapping."""

    dataset: str
    key: str
    path: Path
    #: common field -> column of this source.
    columns: dict[str, str]
    updated_at: str | None = None


@dataclass
class MatchOutput:
    """What one unification produced: files and figures."""

    unified: Path
    records: Path
    keys: Path
    history: Path
    next_id: int
    profiles: int
    columns: list[dict[str, str]]
    stats: dict[str, Any] = field(default_factory=dict)


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _norm_sql(kind: FieldKind, column: str) -> str:
    """SQL normalizing a text-like field for matching (identifiers are hashed apart)."""
    # NFC, so that a composed and a decomposed "ü" are one letter; every Unicode space
    # (what Python's str.isspace() calls one: no-break, ideographic, ...), not only
    # ASCII's, separates words, so a value made only of spaces is no value.
    text = f"nfc_normalize(CAST({column} AS VARCHAR))"
    if kind is FieldKind.TEXT:
        return f"nullif(lower(trim(regexp_replace({text}, {_lit(_SPACES)}, ' ', 'g'))), '')"
    if kind is FieldKind.CODE:
        return f"nullif(upper(regexp_replace({text}, {_lit(_SPACES)}, '', 'g')), '')"
    return f"nullif({text}, '')"


class _Runner:
    """One unification's DuckDB session and scratch folder."""

    def __init__(
        self,
        rules: UnificationRules,
        sources: list[SourceInput],
        out: Path,
        previous: Path | None,
        next_id: int,
    ) -> None:
        self.rules = rules
        self.sources = sources
        self.out = out
        self.previous = previous
        self.next_id = next_id
        self.fields = list(rules.fields)
        self.col = {f: f"f{i}" for i, f in enumerate(self.fields)}
        self.stats: dict[str, Any] = {}
        self.unsettled = 0
        self.seconds: dict[str, float] = {}
        scratch = out / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = scratch
        # Row order never matters here (every order is explicit), and keeping it costs
        # memory DuckDB could otherwise spill.
        self.con = duck.connect(
            temp_directory=str(scratch / "spill"), preserve_insertion_order=False
        )
        self.con.execute("SET TimeZone = 'UTC'")

    def sql(self, query: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(query, params or [])

    def one(self, query: str) -> Any:
        row = self.con.execute(query).fetchone()
        return None if row is None else row[0]

    def timed(self, phase: str, started: float) -> None:
        self.seconds[phase] = round(time.perf_counter() - started, 3)
        log.info("unification: %s took %.1fs", phase, self.seconds[phase])

    # --- 1. records ------------------------------------------------------------------

    def load_records(self) -> None:
        started = time.perf_counter()
        selects = []
        for index, source in enumerate(self.sources):
            parts = [
                f"{index}::INTEGER AS src",
                f"CAST({_q(source.key)} AS VARCHAR) AS skey",
                (
                    f"TRY_CAST({_q(source.updated_at)} AS TIMESTAMP) AS ts"
                    if source.updated_at
                    else "NULL::TIMESTAMP AS ts"
                ),
            ]
            for name, column in source.columns.items():
                parts.append(f"{_q(column)} AS {self.col[name]}")
            parts.append(f"({index}::BIGINT << {_REC_BITS}) + file_row_number + 1 AS rec")
            selects.append(
                f"SELECT {', '.join(parts)} "
                f"FROM read_parquet({_lit(str(source.path))}, file_row_number = true)"
            )
        union = " UNION ALL BY NAME ".join(selects)
        missing = [c for f, c in self.col.items() if not any(f in s.columns for s in self.sources)]
        extra = "".join(f", NULL::VARCHAR AS {c}" for c in missing)
        # rec numbers records by source (in priority order), then file order: no sort.
        self.sql(f"CREATE TABLE records AS SELECT *{extra} FROM ({union})")
        self.sql(
            "CREATE TABLE srcs (src INTEGER, dataset VARCHAR);"
            + "".join(
                f"INSERT INTO srcs VALUES ({i}, {_lit(s.dataset)});"
                for i, s in enumerate(self.sources)
            )
        )
        self.timed("read", started)

    # --- 2. identifiers ----------------------------------------------------------------

    def hash_identifiers(self) -> dict[str, int]:
        """One table ``h_<field>`` (rec, h) of accepted hashes per identifier field;
        returns the rejected (present but invalid) values per field."""
        started = time.perf_counter()
        rejected: dict[str, int] = {}
        for name, kind in self.rules.fields.items():
            identifier = kind.identifier
            if identifier is None:
                continue
            column = self.col[name]
            path = self.scratch / f"h_{column}.parquet"
            schema = pa.schema([("rec", pa.int64()), ("h", pa.string())])
            bad = 0
            cursor = self.con.cursor()
            try:
                reader = cursor.execute(
                    f"SELECT rec, CAST({column} AS VARCHAR) AS v FROM records "
                    f"WHERE {column} IS NOT NULL"
                ).to_arrow_reader(HASH_BATCH_ROWS)
                with pq.ParquetWriter(path, schema, compression="zstd") as writer:
                    for batch in _batches(reader):
                        hashed = hash_batch(
                            identifier,
                            batch.column("v"),
                            default_country=self.rules.default_country,
                        )
                        bad += hashed.rejected_total - int(
                            hashed.rejected.get(RejectReason.EMPTY, 0)
                        )
                        table = pa.table({"rec": batch.column("rec"), "h": hashed.hashes})
                        writer.write_table(table.filter(pc.is_valid(table.column("h"))))
            finally:
                cursor.close()
            self.sql(f"CREATE TABLE h_{column} AS SELECT * FROM read_parquet({_lit(str(path))})")
            path.unlink(missing_ok=True)
            rejected[name] = bad
        self.timed("hash", started)
        return rejected

    def normalized(self, name: str) -> tuple[str, str]:
        """(expression, join clause) of a field's normalized value over ``records r``."""
        kind = self.rules.fields[name]
        column = self.col[name]
        if kind.identifier is not None:
            return f"h_{column}.h", f" LEFT JOIN h_{column} USING (rec)"
        return _norm_sql(kind, f"r.{column}"), ""

    # --- 3. keys ------------------------------------------------------------------------

    def build_keys(self) -> None:
        started = time.perf_counter()
        limit = self.rules.limits.max_records_per_key
        used = list(dict.fromkeys(f for rule in self.rules.match for f in rule.fields))
        expressions, joins = [], []
        for name in used:
            expression, join = self.normalized(name)
            expressions.append(f"{expression} AS n_{self.col[name]}")
            joins.append(join)
        self.sql(
            f"CREATE TABLE norm AS SELECT r.rec, {', '.join(expressions)} "
            f"FROM records r{''.join(joins)}"
        )
        parts = []
        for number, rule in enumerate(self.rules.match):
            names = [f"n_{self.col[f]}" for f in rule.fields]
            value = names[0] if len(names) == 1 else f"concat_ws({_lit(_SEP)}, {', '.join(names)})"
            present = " AND ".join(f"{n} IS NOT NULL" for n in names)
            parts.append(
                f"SELECT rec, {number}::INTEGER AS rule, {value} AS val FROM norm WHERE {present}"
            )
        self.sql(f"CREATE TABLE keys_raw AS {' UNION ALL '.join(parts)}")
        self.sql("DROP TABLE norm")
        # Keys held by one record link nothing: only shared keys are kept.
        self.sql(
            # A record holds one value per rule, so it is the first record of at most one
            # key per rule: (first record, rule) names a key without a sort.
            f"CREATE TABLE kstat AS SELECT min(rec) * {MAX_MATCH_RULES_ID} + rule AS kid, "
            "rule, val, count(*) AS n, min(rec) AS first_rec FROM keys_raw "
            "GROUP BY rule, val HAVING count(*) > 1"
        )
        self.sql(
            f"CREATE TABLE kmem AS SELECT k.rec, s.kid, s.rule, s.n, s.n > {limit} AS refused "
            "FROM keys_raw k JOIN kstat s USING (rule, val)"
        )
        self.sql("DROP TABLE keys_raw")
        self.sql(f"CREATE TABLE refused_vals AS SELECT rule, val FROM kstat WHERE n > {limit}")
        self.sql("CREATE TABLE edges AS SELECT rec, kid FROM kmem WHERE NOT refused")
        self.timed("keys", started)

    # --- 4. components ------------------------------------------------------------------

    def components(self) -> int:
        started = time.perf_counter()
        self.sql(
            "CREATE TABLE lab AS SELECT e.rec, min(s.first_rec) AS l FROM edges e "
            "JOIN kstat s USING (kid) GROUP BY e.rec"
        )
        # Min-label propagation with hooking and full shortcutting: each round every
        # record takes the smallest label among its keys' records, the record a label names
        # (its root) takes the smallest label of the records pointing at it, and then labels
        # jump to their label's label until nothing moves. Rounds grow with the logarithm of
        # a chain's length whatever the records' order.
        rounds = 0
        self.unsettled = 0
        while True:
            rounds += 1
            if rounds > MAX_ROUNDS:
                self._keep_unsettled_apart()
                break
            self.sql(
                "CREATE OR REPLACE TABLE klab AS SELECT e.kid, min(l.l) AS l FROM edges e "
                "JOIN lab l USING (rec) GROUP BY e.kid"
            )
            self.sql(
                "CREATE OR REPLACE TABLE lab2 AS SELECT e.rec, min(k.l) AS l FROM edges e "
                "JOIN klab k USING (kid) GROUP BY e.rec"
            )
            # Hook: a root takes the smallest new label of the records it labelled.
            self.sql(
                "CREATE OR REPLACE TABLE lab3 AS SELECT a.rec, least(a.l, coalesce(h.l, a.l)) "
                "AS l FROM lab2 a LEFT JOIN (SELECT o.l AS root, min(n.l) AS l FROM lab o "
                "JOIN lab2 n USING (rec) GROUP BY o.l) h ON h.root = a.rec"
            )
            self._shortcut("lab3")
            changed = self.one(
                "SELECT count(*) FROM lab3 JOIN lab USING (rec) WHERE lab3.l <> lab.l"
            )
            self.sql(
                "DROP TABLE IF EXISTS lab_prev; ALTER TABLE lab RENAME TO lab_prev; "
                "ALTER TABLE lab3 RENAME TO lab; DROP TABLE lab2"
            )
            if not changed:
                break
        self.sql("DROP TABLE IF EXISTS klab; DROP TABLE IF EXISTS lab_prev")
        limit = self.rules.limits.max_cluster_size
        self.sql(
            "CREATE TABLE comp0 AS SELECT r.rec, coalesce(l.l, r.rec) AS comp FROM records r "
            "LEFT JOIN lab l USING (rec)"
        )
        self.sql("CREATE TABLE sizes0 AS SELECT comp, count(*) AS n FROM comp0 GROUP BY comp")
        self.oversized = self._oversized(limit)
        self.sql(
            f"CREATE TABLE comps AS SELECT c.rec, CASE WHEN s.n > {limit} THEN c.rec "
            "ELSE c.comp END AS comp FROM comp0 c JOIN sizes0 s USING (comp)"
        )
        self.sql("DROP TABLE lab; DROP TABLE edges")
        self.timed("components", started)
        return rounds

    def _shortcut(self, table: str) -> None:
        """Pointer jumping to a fixpoint: every label becomes its label's label."""
        for _ in range(MAX_ROUNDS):
            self.sql(
                f"CREATE OR REPLACE TABLE jump AS SELECT a.rec, least(a.l, coalesce(b.l, a.l)) "
                f"AS l FROM {table} a LEFT JOIN {table} b ON b.rec = a.l"
            )
            moved = self.one(
                f"SELECT count(*) FROM jump JOIN {table} USING (rec) WHERE jump.l <> {table}.l"
            )
            self.sql(f"DROP TABLE {table}; ALTER TABLE jump RENAME TO {table}")
            if not moved:
                return

    def _keep_unsettled_apart(self) -> None:
        """At the round cap: records of a group whose labels still moved are kept apart
        (as an oversized group is) and counted, instead of failing the whole run."""
        self.sql(
            "CREATE OR REPLACE TABLE moving AS SELECT DISTINCT x.l FROM (SELECT lab.l FROM lab "
            "JOIN lab_prev p USING (rec) WHERE lab.l <> p.l UNION SELECT p.l FROM lab "
            "JOIN lab_prev p USING (rec) WHERE lab.l <> p.l) x"
        )
        self.unsettled = int(
            self.one("SELECT count(*) FROM lab WHERE l IN (SELECT l FROM moving)") or 0
        )
        self.sql("UPDATE lab SET l = rec WHERE l IN (SELECT l FROM moving)")
        self.sql("DROP TABLE moving")
        log.warning(
            "unification: %d records still moving after %d rounds were kept apart",
            self.unsettled,
            MAX_ROUNDS,
        )

    def _oversized(self, limit: int) -> list[dict[str, Any]]:
        found = []
        rows = self.sql(
            f"SELECT comp, n FROM sizes0 WHERE n > {limit} ORDER BY n DESC, comp LIMIT {TOP}"
        ).fetchall()
        for comp, size in rows:
            keys = self.sql(
                "SELECT m.rule, count(*) AS inside, any_value(m.n) AS n, min(m.rec) AS example "
                "FROM kmem m JOIN comp0 c USING (rec) WHERE c.comp = ? AND NOT m.refused "
                "GROUP BY m.kid, m.rule ORDER BY inside DESC, m.kid LIMIT 3",
                [comp],
            ).fetchall()
            found.append(
                {
                    "records": int(size),
                    "example": self._record(int(comp)),
                    "largest_keys": [
                        {"rule": self.rules.match[rule].name, "records": int(n),
                         "example": self._record(int(example))}
                        for rule, _inside, n, example in keys
                    ],
                }
            )  # fmt: skip
        return found

    def _record(self, rec: int) -> dict[str, str]:
        row = self.sql(
            "SELECT s.dataset, r.skey FROM records r JOIN srcs s USING (src) WHERE r.rec = ?",
            [rec],
        ).fetchone()
        assert row is not None
        key = str(row[1])
        # Figures never hold personal data: a key that looks like an email or a phone
        # (a dataset keyed on its email column) is not shown.
        if _EMAIL_LIKE.search(key) or (
            sum(c.isdigit() for c in key) >= 7 and _PHONE_CHARS.fullmatch(key.strip())
        ):
            key = "(withheld: the key looks like an email or phone)"
        return {"dataset": str(row[0]), "key": key}

    # --- 5. stable ids ------------------------------------------------------------------

    def assign_ids(self) -> dict[str, int]:
        started = time.perf_counter()
        self.sql(
            "CREATE TABLE cur AS SELECT r.rec, s.dataset, r.skey, c.comp FROM records r "
            "JOIN comps c USING (rec) JOIN srcs s USING (src)"
        )
        if self.previous is not None and self.previous.exists():
            self.sql(
                "CREATE TABLE prev AS SELECT dataset, skey, unified_id AS uid "
                f"FROM read_parquet({_lit(str(self.previous))})"
            )
        else:
            self.sql("CREATE TABLE prev (dataset VARCHAR, skey VARCHAR, uid BIGINT)")
        self.sql(
            "CREATE TABLE cand AS SELECT c.comp, p.uid, count(*) AS n FROM cur c "
            "JOIN prev p ON p.dataset = c.dataset AND p.skey = c.skey GROUP BY c.comp, p.uid"
        )
        # A previous id goes to the component holding most of its records (ties: the
        # component of the smallest record); a component holding several keeps the smallest.
        self.sql(
            "CREATE TABLE owner AS SELECT uid, arg_min(comp, [-n, comp]) AS comp "
            "FROM cand GROUP BY uid"
        )
        self.sql("CREATE TABLE kept AS SELECT comp, min(uid) AS uid FROM owner GROUP BY comp")
        start = self.next_id
        self.sql(
            "CREATE TABLE ids AS SELECT comp, uid, false AS created FROM kept UNION ALL "
            f"SELECT comp, {start - 1} + row_number() OVER (ORDER BY comp) AS uid, true "
            "FROM (SELECT DISTINCT comp FROM cur ANTI JOIN kept USING (comp))"
        )
        created = int(self.one("SELECT count(*) FROM ids WHERE created") or 0)
        self.next_id = start + created
        self.sql(
            "CREATE TABLE history AS "
            "SELECT 'merged' AS event, i.uid AS unified_id, o.uid AS previous_id "
            "FROM owner o JOIN ids i USING (comp) WHERE o.uid <> i.uid "
            "UNION ALL SELECT 'split', i.uid, c.uid FROM cand c JOIN owner o USING (uid) "
            "JOIN ids i ON i.comp = c.comp WHERE o.comp <> c.comp "
            "UNION ALL SELECT 'created', i.uid, NULL FROM ids i "
            "ANTI JOIN cand c USING (comp) WHERE i.created "
            "UNION ALL SELECT 'removed', NULL, p.uid FROM (SELECT DISTINCT uid FROM prev) p "
            "ANTI JOIN cand c USING (uid)"
        )
        counts = {
            str(event): int(n)
            for event, n in self.sql(
                "SELECT event, count(*) FROM history GROUP BY event"
            ).fetchall()
        }
        self.sql(
            f"COPY (SELECT * FROM history ORDER BY event, unified_id, previous_id) "
            f"TO {_lit(str(self.out / HISTORY_FILE))} (FORMAT parquet, COMPRESSION zstd)"
        )
        # Fixed-size ordering keys for survivorship: most recent first (then source
        # priority), and source priority first (then most recent). rec is numbered by
        # source, then key, so it carries the priority order itself.
        if any(s.updated_at for s in self.sources):
            self.sql(
                "CREATE TABLE ords AS SELECT rec, "
                "row_number() OVER (ORDER BY ts DESC NULLS LAST, rec) AS ord_recent, "
                "row_number() OVER (ORDER BY src, ts DESC NULLS LAST, rec) AS ord_priority "
                "FROM records"
            )
        else:
            self.sql("CREATE TABLE ords AS SELECT rec, rec AS ord_recent, rec AS ord_priority "
                     "FROM records")  # fmt: skip
        self.sql(
            "CREATE TABLE ru AS SELECT r.*, i.uid, o.ord_recent, o.ord_priority FROM records r "
            "JOIN comps c USING (rec) JOIN ids i USING (comp) JOIN ords o USING (rec)"
        )
        self.sql("DROP TABLE ords")
        for table in ("cand", "owner", "kept", "prev", "comp0", "comps"):
            self.sql(f"DROP TABLE {table}")
        self.timed("ids", started)
        return {e: counts.get(e, 0) for e in ("created", "merged", "split", "removed")}

    # --- 6. unified profiles ------------------------------------------------------------

    def unify(self) -> tuple[Path, int, list[dict[str, str]]]:
        """One row per unified id. Each field is aggregated into a table of its own, one
        at a time, with fixed-size ordering keys, so memory stays within the budget."""
        started = time.perf_counter()
        tables: list[tuple[str, str]] = []
        for name in self.fields:
            kind = self.rules.fields[name]
            column = self.col[name]
            how = self.rules.survivorship_of(name)
            if kind.identifier is not None:
                value = f"trim(CAST(ru.{column} AS VARCHAR))"
                norm = f"h_{column}.h"
                source = f"ru JOIN h_{column} USING (rec)"
                refused = [
                    str(number)
                    for number, rule in enumerate(self.rules.match)
                    if rule.fields == (name,)
                ]
                if refused:
                    # A refused placeholder is no one's identifier: never in the lists.
                    source += (
                        f" ANTI JOIN (SELECT val FROM refused_vals WHERE rule IN "
                        f"({', '.join(refused)})) AS refused ON refused.val = h_{column}.h"
                    )
                present = "true"
            else:
                value = f"ru.{column}"
                norm = _norm_sql(kind, f"ru.{column}")
                source = "ru"
                present = f"{norm} IS NOT NULL"
            table = f"v_{column}"
            if how in (Survivorship.MOST_RECENT, Survivorship.SOURCE_PRIORITY):
                order = "ord_recent" if how is Survivorship.MOST_RECENT else "ord_priority"
                query = (
                    f"SELECT uid, arg_min({value}, {order}) AS v FROM {source} "
                    f"WHERE {present} GROUP BY uid"
                )
            else:
                # One row per (profile, distinct normalized value): its first value in
                # priority order (rec is numbered by source, then key), and how often.
                inner = (
                    f"SELECT uid, {norm} AS k, count(*) AS n, min(rec) AS r, "
                    f"arg_min({value}, rec) AS v FROM {source} WHERE {present} GROUP BY uid, k"
                )
                if how is Survivorship.MOST_FREQUENT:
                    query = (
                        # the most records first; a tie goes to the highest priority.
                        f"SELECT uid, arg_min(v, [-n, r]) AS v FROM ({inner}) GROUP BY uid"
                    )
                else:
                    query = f"SELECT uid, list(v ORDER BY r) AS v FROM ({inner}) GROUP BY uid"
            self.sql(f"CREATE TABLE {table} AS {query}")
            log.info("unification: field %d of %d aggregated", len(tables) + 1, len(self.fields))
            tables.append((table, name))
        self.sql(
            f"CREATE TABLE acc AS SELECT ru.uid, count(*)::BIGINT AS {RECORD_COUNT}, "
            f"list_sort(list(DISTINCT s.dataset)) AS {SOURCE_DATASETS} "
            "FROM ru JOIN srcs s USING (src) GROUP BY ru.uid"
        )
        # One join at a time: a single query joining every field's table builds all
        # their hash tables at once, which does not fit the budget at millions of rows.
        for table, name in tables:
            self.sql(
                f"CREATE TABLE acc_next AS SELECT acc.*, {table}.v AS {_q(name)} FROM acc "
                f"LEFT JOIN {table} USING (uid)"
            )
            self.sql(f"DROP TABLE acc; DROP TABLE {table}; ALTER TABLE acc_next RENAME TO acc")
        target = self.out / "unified.parquet"
        self.sql(
            f"COPY (SELECT uid AS {UNIFIED_ID}, * EXCLUDE (uid) FROM acc ORDER BY uid) "
            f"TO {_lit(str(target))} (FORMAT parquet, COMPRESSION zstd)"
        )
        self.sql("DROP TABLE acc")
        described = self.sql(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(target))})").fetchall()
        columns = [{"name": str(r[0]), "type": str(r[1])} for r in described]
        profiles = int(self.one(f"SELECT count(*) FROM read_parquet({_lit(str(target))})") or 0)
        self.timed("unify", started)
        return target, profiles, columns

    # --- 7. link table, keys and figures -----------------------------------------------

    def write_links(self) -> None:
        started = time.perf_counter()
        self.sql(
            f"COPY (SELECT ru.uid AS {UNIFIED_ID}, s.dataset, ru.skey, ru.rec FROM ru "
            "JOIN srcs s USING (src) ORDER BY ru.uid, ru.rec) "
            f"TO {_lit(str(self.out / RECORDS_FILE))} (FORMAT parquet, COMPRESSION zstd)"
        )
        self.sql(
            "COPY (SELECT rec, kid, rule, n, refused FROM kmem ORDER BY rec, kid) "
            f"TO {_lit(str(self.out / KEYS_FILE))} (FORMAT parquet, COMPRESSION zstd)"
        )
        self.timed("write", started)

    def figures(self, rejected: dict[str, int], history: dict[str, int], rounds: int) -> None:
        per_source = dict(
            self.sql(
                "SELECT s.dataset, count(r.rec) FROM srcs s LEFT JOIN records r USING (src) "
                "GROUP BY s.dataset, s.src ORDER BY s.src"
            ).fetchall()
        )
        total = sum(int(n) for n in per_source.values())
        profiles, largest_size = self.sql(
            "SELECT count(*), coalesce(max(n), 0) FROM (SELECT uid, count(*) AS n FROM ru "
            "GROUP BY uid)"
        ).fetchone() or (0, 0)
        profiles = int(profiles)
        buckets = self.sql(
            "SELECT CASE WHEN n = 1 THEN '1' WHEN n = 2 THEN '2' WHEN n = 3 THEN '3' "
            "WHEN n <= 10 THEN '4-10' WHEN n <= 100 THEN '11-100' ELSE '101+' END AS b, "
            "count(*) FROM (SELECT uid, count(*) AS n FROM ru GROUP BY uid) GROUP BY b"
        ).fetchall()
        largest = self._largest()
        refused_total, refused_records = self.sql(
            "SELECT count(DISTINCT kid), count(DISTINCT rec) FROM kmem WHERE refused"
        ).fetchone() or (0, 0)
        refused = [
            {"rule": self.rules.match[int(rule)].name, "records": int(n),
             "example": self._record(int(example))}
            for rule, n, example in self.sql(
                "SELECT rule, n, first_rec FROM kstat WHERE n > "
                f"{self.rules.limits.max_records_per_key} ORDER BY n DESC, kid LIMIT {TOP}"
            ).fetchall()
        ]  # fmt: skip
        limit = self.rules.limits.max_records_per_key
        near = max(3, limit // 2)
        near_limit = [
            {"rule": self.rules.match[int(rule)].name, "records": int(n),
             "example": self._record(int(example))}
            for rule, n, example in self.sql(
                f"SELECT rule, n, first_rec FROM kstat WHERE n > {near} AND n <= {limit} "
                f"ORDER BY n DESC, kid LIMIT {TOP}"
            ).fetchall()
        ]  # fmt: skip
        linked_by_rule = {
            self.rules.match[int(rule)].name: int(n)
            for rule, n in self.sql(
                "SELECT rule, count(DISTINCT rec) FROM kmem WHERE NOT refused GROUP BY rule"
            ).fetchall()
        }
        self.stats = {
            "source_records": {str(k): int(v) for k, v in per_source.items()},
            "source_records_total": total,
            "unified_profiles": profiles,
            "records_per_profile": {
                "mean": round(total / profiles, 3) if profiles else 0.0,
                "max": int(largest_size),
                "distribution": {str(b): int(n) for b, n in sorted(buckets)},
            },
            "largest_clusters": largest,
            "refused_keys": {
                "keys": int(refused_total or 0),
                "records": int(refused_records or 0),
                "largest": refused,
            },
            # Keys that alone join more than half the limit's records (but were not
            # refused): a placeholder just under the limit shows here.
            "keys_near_limit": {"above": near, "largest": near_limit},
            "oversized_clusters": self.oversized,
            "unsettled_records": self.unsettled,
            "records_linked_by_rule": {
                r.name: linked_by_rule.get(r.name, 0) for r in self.rules.match
            },
            "rejected_identifiers": rejected,
            "history": history,
            "rounds": rounds,
            "limits": self.rules.limits.model_dump(),
        }

    def _largest(self) -> list[dict[str, Any]]:
        rows = self.sql(
            f"SELECT uid, count(*) AS n FROM ru GROUP BY uid ORDER BY n DESC, uid LIMIT {TOP}"
        ).fetchall()
        found = []
        for uid, n in rows:
            per = self.sql(
                "SELECT s.dataset, count(*) FROM ru JOIN srcs s USING (src) WHERE ru.uid = ? "
                "GROUP BY s.dataset, s.src ORDER BY s.src",
                [uid],
            ).fetchall()
            found.append(
                {"unified_id": int(uid), "records": int(n),
                 "by_source": {str(d): int(c) for d, c in per}}
            )  # fmt: skip
        return found

    def close(self) -> None:
        self.con.close()


def _batches(reader: pa.RecordBatchReader) -> Any:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


def run_matching(
    rules: UnificationRules,
    sources: list[SourceInput],
    out: Path,
    *,
    previous: Path | None = None,
    next_id: int = 1,
) -> MatchOutput:
    """Match ``sources`` by ``rules`` into ``out`` (a new, empty folder).

    ``previous`` is the records file of the previous version (for stable ids) and
    ``next_id`` the first id never given. Returns the files written and the figures.
    Raises UserInputError when the data cannot be read as the rules say.
    """
    started = time.perf_counter()
    runner = _Runner(rules, sources, out, previous, next_id)
    try:
        try:
            runner.load_records()
        except duckdb.Error as error:
            raise UserInputError(
                f"the sources cannot be read as the rules say ({_first(error)}): check "
                "the column mapping and the updated_at column."
            ) from None
        try:
            rejected = runner.hash_identifiers()
            runner.build_keys()
            rounds = runner.components()
            history = runner.assign_ids()
            unified, profiles, columns = runner.unify()
            runner.write_links()
            runner.figures(rejected, history, rounds)
        except duckdb.OutOfMemoryException:
            raise AudiencesyncError(
                f"the unification needs more memory than DuckDB's budget of "
                f"{duck.memory_limit()}: set AUDIENCESYNC_DUCKDB_MEMORY_LIMIT higher (such "
                "as 4GB) and refresh again; nothing was changed."
            ) from None
        except duckdb.Error as error:
            raise AudiencesyncError(
                f"the unification failed in DuckDB ({_first(error)}); nothing was changed."
            ) from None
    finally:
        runner.close()
        _remove_tree(runner.scratch)
    runner.seconds["total"] = round(time.perf_counter() - started, 3)
    runner.stats["seconds"] = runner.seconds
    log.info("unification: %d records into %d profiles in %.1fs",
             runner.stats["source_records_total"], profiles, runner.seconds["total"])  # fmt: skip
    return MatchOutput(
        unified=unified,
        records=out / RECORDS_FILE,
        keys=out / KEYS_FILE,
        history=out / HISTORY_FILE,
        next_id=runner.next_id,
        profiles=profiles,
        columns=columns,
        stats=runner.stats,
    )


def _first(error: BaseException) -> str:
    # DuckDB quotes offending values: keep the first line, without anything quoted.
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return redact(re.sub(r"'[^']*'|\"[^\"]*\"", "(a value)", first))[:200]


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
