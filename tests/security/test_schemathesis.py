"""schemathesis over the served OpenAPI document, with an administrator's and a viewer's
token (issue 13): no answer is a 5xx, every answer's status is one the document declares
for that operation, and every body fits the schema declared for it.

The app is served on a free loopback port (tests/integration/api's ``AppServer``) over a
home with a dataset, two segments, a Snapchat connection to the local emulator, an export
and a queued run. The Snapchat settings point at that emulator only: the OAuth routes
(``/connections/authorizations``, ``/callback``, ``/reauth``) exchange codes with it and
nothing outside this machine.

Every operation is fuzzed for each role, with data that fits the schema (positive) and
data that does not (negative); a share of the path parameters names the things that
exist, so handlers run past their 404s. What the generated requests may not do, so the
rest of the pass keeps its meaning (``_protected``): remove or change the administrator or
the viewer (``DELETE``/``PATCH /users/{admin,victor}``), revoke either fuzzing token
(``DELETE /me/tokens/{its id}``), or remove the fixtures every other case reads (the
dataset, segments, connection, export). After every case both tokens must still answer
``GET /me`` with their role.

Short version in ``make test`` (AUDIENCESYNC_SCHEMATHESIS_REQUESTS unset: one round of a
few examples per operation, role and mode); ``make soak`` / ``make fuzz`` ask for 20,000
requests or more and record the figures for docs/reliability.md.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from audiencesync.api import auth
from audiencesync.control.models import Role
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.reliability.figures import record

TARGET = "AUDIENCESYNC_SCHEMATHESIS_REQUESTS"
#: Seconds after which a long pass stops at the end of the operation it is on (0: none).
BUDGET = "AUDIENCESYNC_SCHEMATHESIS_SECONDS"
#: Requests per (operation, role, mode) in one round of the long version.
LONG_EXAMPLES = 10
#: Requests per (operation, role, mode) in one round of the short version.
SHORT_EXAMPLES = 2
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SCHEMA_CHECKS = {"status_code_conformance", "content_type_conformance",
                 "response_schema_conformance"}  # fmt: skip

#: Things that exist in the fuzzed home, by path parameter; a share of cases name them.
EXISTING = {
    "dataset": "customers",
    "segment": "gb",
    "connection": "Snap",
    "export": "weekly",
}
PROTECTED_USERS = {"admin", "victor"}
PROTECTED_NAMES = {
    "/api/v1/datasets/{name}": {"customers"},
    "/api/v1/segments/{name}": {"everyone", "gb"},
    "/api/v1/connections/{name}": {"Snap"},
    "/api/v1/exports/{name}": {"weekly"},
}


@dataclass
class Tally:
    """What the pass sent and what came back, by operation."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    schema_violations: Counter[str] = field(default_factory=Counter)
    by_check: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    unsatisfiable: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass
class Fuzzed:
    api: Api
    schema: Any
    tokens: dict[str, str]
    token_ids: set[int]
    run_id: int
    session: requests.Session


def _existing_for(path: str, run_id: int) -> dict[str, Any] | None:
    """Path parameters naming something that exists, for operations under ``path``."""
    if "{run_id}" in path:
        return {"run_id": run_id}
    if "{name}" not in path:
        return None
    for prefix, name in (
        ("/api/v1/datasets/", EXISTING["dataset"]),
        ("/api/v1/segments/", EXISTING["segment"]),
        ("/api/v1/connections/", EXISTING["connection"]),
        ("/api/v1/exports/", EXISTING["export"]),
        ("/api/v1/users/", "carol"),
    ):
        if path.startswith(prefix):
            return {"name": name}
    return None


def _unprotect(case: Any, token_ids: set[int]) -> Any:
    """A case that would make the rest of the pass meaningless (see the module's doc),
    turned to aim beside its target: another name, another token id."""
    method = case.operation.method.upper()
    path = case.operation.path
    params = case.path_parameters
    if not params:
        return case
    name = params.get("name")
    if (path.startswith("/api/v1/users/{name}") and method in ("DELETE", "PATCH")
            and name in PROTECTED_USERS):  # fmt: skip
        params["name"] = f"{name}-not"
    elif path == "/api/v1/me/tokens/{token_id}" and method == "DELETE":
        if params.get("token_id") in token_ids:
            params["token_id"] = max(token_ids) + 1000
    elif method == "DELETE" and name in PROTECTED_NAMES.get(path, ()):
        params["name"] = f"{name}-not"
    return case


def _negatable(raw: dict[str, Any]) -> bool:
    """Whether negative generation can make a request the document calls wrong."""
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        if parameter.get("in") != "path" or parameter.get("schema", {}).get("type") != "string":
            return True
    return False


def _check_tokens(fuzzed: Fuzzed) -> None:
    for role, token in fuzzed.tokens.items():
        answer = fuzzed.session.get(
            fuzzed.api.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, f"the {role} token stopped working: {answer.text}"
        assert answer.json()["role"] == role, answer.text


def _fuzz_operation(
    fuzzed: Fuzzed,
    operation: Any,
    role: str,
    mode: schemathesis.GenerationMode,
    examples: int,
    seed: int,
    tally: Tally,
) -> None:
    label = operation.label
    strategy = operation.as_strategy(generation_mode=mode)
    existing = _existing_for(operation.path, fuzzed.run_id)
    if mode.is_negative:
        if not _negatable(operation.definition.raw):
            return  # only text in the path: any text fits, there is no wrong request
        if "requestBody" not in operation.definition.raw:
            existing = None  # nothing but the path to negate: a fixed path leaves no case
    if existing is not None:
        # Half the cases name what exists: handlers run past their 404s.
        strategy = st.one_of(
            strategy, operation.as_strategy(generation_mode=mode, path_parameters=existing)
        )
    strategy = strategy.map(lambda case: _unprotect(case, fuzzed.token_ids))
    headers = {"Authorization": f"Bearer {fuzzed.tokens[role]}"}

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        # filter_too_much stays on: an operation whose negative cases are all rejected
        # (only a path to negate) fails it at once instead of searching for minutes.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        print_blob=False,
    )
    @given(case=strategy)
    def one(case: Any) -> None:
        response = case.call(
            base_url=fuzzed.api.url, session=fuzzed.session, headers=headers, timeout=60
        )
        tally.requests[label] += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as failures:
            names = set()
            for failure in failures.exceptions:
                names |= set(type(failure).checks) or {type(failure).__name__}
            for name in names:
                tally.by_check[name] += 1
            if response.status_code >= 500 or "not_a_server_error" in names:
                tally.server_errors[label] += 1
            if names & SCHEMA_CHECKS:
                tally.schema_violations[label] += 1
            if len(tally.details) < 20:
                curl = case.as_curl_command(headers={"Authorization": f"Bearer <{role}>"})
                first = failures.exceptions[0]
                tally.details.append(
                    f"{role} {label} -> {response.status_code}: {sorted(names)}: "
                    f"{first.title}: {first.message[:300]}\n  {curl[:500]}"
                )

    began = time.monotonic()
    try:
        one()
        if os.environ.get("DEBUGT"):
            print(f"{time.monotonic() - began:7.2f} {role} {mode.value} {label}", flush=True)
    except (
        hypothesis.errors.Unsatisfiable,
        hypothesis.errors.FlakyFailure,
        hypothesis.errors.FailedHealthCheck,
    ):
        tally.unsatisfiable.add(f"{role} {mode.value} {label}")
        if os.environ.get("DEBUGT"):
            print(f"{time.monotonic() - began:7.2f} {role} {mode.value} {label} UNSAT", flush=True)


def _operations(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())
    return operations


@pytest.fixture
def fuzzed(profiles: Api) -> Fuzzed:
    api = profiles
    connect_via_api(api)
    created = add_export_via_api(api, api.admin)
    assert created.status_code == 201, created.text
    queued = api.admin.post("/api/v1/exports/weekly/dry-run")
    assert queued.status_code == 202, queued.text
    tokens: dict[str, str] = {}
    token_ids: set[int] = set()
    for role in (Role.ADMIN, Role.VIEWER):
        made = auth.create_token(api.ctx, api.actors[role], "schemathesis")
        api.recorder.created_tokens.add(made.token)
        tokens[role.value] = made.token
        token_ids.add(made.view.id)
    # Every token handed out in this home, so none can be revoked by a generated id.
    for client in api.clients.values():
        listed = client.get("/api/v1/me/tokens").json()
        token_ids |= {t["id"] for t in listed}
    document = api.admin.get("/api/openapi.json").json()
    # Negative generation would drop the declared bearer header from a third of the cases:
    # every request here carries its role's token (anonymous answers are the
    # authorization matrix's subject), so the copy fed to schemathesis declares none.
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    return Fuzzed(api, schema, tokens, token_ids, queued.json()["id"], session)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed: Fuzzed) -> None:
    target = int(os.environ.get(TARGET, "0") or 0)
    budget = float(os.environ.get(BUDGET, "0") or 0)
    # Short rounds over every operation, as many as the target needs: each round draws
    # new cases (its own seed), and every operation gets its share even when stopped.
    examples = SHORT_EXAMPLES if target == 0 else LONG_EXAMPLES
    operations = _operations(fuzzed.schema)
    assert len(operations) >= 70, "the OpenAPI document lost operations"
    tally = Tally()
    started = time.monotonic()
    rounds = 0
    out_of_time = False
    while not out_of_time:
        for index, operation in enumerate(operations):
            for role in fuzzed.tokens:
                for mode in schemathesis.GenerationMode:
                    seed = rounds * 100_003 + index * 7 + (role == "viewer") * 3 + len(mode.value)
                    _fuzz_operation(fuzzed, operation, role, mode, examples, seed, tally)
            _check_tokens(fuzzed)
            if budget and time.monotonic() - started > budget:
                out_of_time = True
                break
        rounds += 1
        if tally.total >= target:
            break
    seconds = time.monotonic() - started
    backend = "postgres" if fuzzed.api.ctx.settings.database_url else "sqlite"
    figures = {
        "control database": backend,
        "operations": len(operations),
        "roles": sorted(fuzzed.tokens),
        "rounds": rounds,
        "stopped by the time budget": out_of_time,
        "requests": tally.total,
        "answers by status": dict(sorted(tally.statuses.items())),
        "server errors": sum(tally.server_errors.values()),
        "schema violations": sum(tally.schema_violations.values()),
        "failures by check": dict(tally.by_check),
        "requests by operation": dict(sorted(tally.requests.items())),
        "server errors by operation": dict(tally.server_errors),
        "schema violations by operation": dict(tally.schema_violations),
        "seconds": round(seconds, 1),
        "failure details": tally.details,
    }
    if target:
        record(f"schemathesis-{backend}", figures)
    print(f"\nschemathesis: {tally.total} requests in {seconds:.1f} s, {dict(tally.statuses)}")
    assert out_of_time or tally.total >= max(target, 200)
    assert not tally.details, "\n".join(tally.details)
    assert tally.statuses[500] == 0
