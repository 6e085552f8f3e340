"""``/segments``: create, change, remove; count, preview, explain, SQL, size history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import (
    CountPublic,
    EvaluationPublic,
    ExplainPublic,
    Message,
    PreviewPublic,
    RulesCheck,
    SegmentCreate,
    SegmentPublic,
    SegmentUpdate,
    SqlPublic,
)
from audiencesync.api.routes.datasets import rows_of
from audiencesync.errors import UserInputError
from audiencesync.segments import service
from audiencesync.segments.rules import RuleNode, load_rules_text, parse_rules, rules_json_schema

router = APIRouter(prefix="/segments", tags=["segments"])


def rules_of(rules: Any, rules_text: str | None) -> RuleNode | None:
    """The rule given as JSON (``rules``) or as YAML/JSON text (``rules_text``), or None."""
    if rules is not None and rules_text is not None:
        raise UserInputError("give the rules as 'rules' (JSON) or 'rules_text' (YAML), not both.")
    if rules_text is not None:
        return load_rules_text(rules_text)
    if rules is not None:
        return parse_rules(rules)
    return None


@router.get("")
def list_segments(ctx: Ctx, actor: CurrentActor, dataset: str | None = None) -> list[SegmentPublic]:
    return [SegmentPublic.of(v) for v in service.list_segments(ctx, actor, dataset=dataset)]


@router.get("/schema")
def schema() -> dict[str, Any]:
    """The JSON Schema of a rule, for editors."""
    return rules_json_schema()


@router.post("/validate")
def validate(ctx: Ctx, actor: CurrentActor, body: RulesCheck) -> Message:
    """Check rules against a dataset without saving: 400 lists every problem."""
    node = rules_of(body.rules, body.rules_text)
    if node is None:
        raise UserInputError("give the rules to check as 'rules' or 'rules_text'.")
    service.validate_rules(ctx, actor, node, dataset=body.dataset, segment=body.segment)
    return Message(detail="the rules are valid.")


@router.post("", status_code=status.HTTP_201_CREATED)
def create(ctx: Ctx, actor: CurrentActor, body: SegmentCreate) -> SegmentPublic:
    node = rules_of(body.rules, body.rules_text)
    if node is None:
        raise UserInputError("a segment needs rules: give 'rules' (JSON) or 'rules_text' (YAML).")
    view = service.create_segment(
        ctx, actor, body.name, dataset=body.dataset, rules=node, description=body.description
    )
    return SegmentPublic.of(view)


@router.get("/{name}")
def get(ctx: Ctx, actor: CurrentActor, name: str) -> SegmentPublic:
    return SegmentPublic.of(service.get_segment(ctx, actor, name))


@router.patch("/{name}")
def update(ctx: Ctx, actor: CurrentActor, name: str, body: SegmentUpdate) -> SegmentPublic:
    node = rules_of(body.rules, body.rules_text)
    view = service.update_segment(ctx, actor, name, rules=node, description=body.description)
    return SegmentPublic.of(view)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    service.remove_segment(ctx, actor, name)


@router.get("/{name}/count")
def count(ctx: Ctx, actor: CurrentActor, name: str) -> CountPublic:
    """How many profiles the segment selects now (recorded in its size history)."""
    return CountPublic.of(service.count_segment(ctx, actor, name))


@router.get("/{name}/preview")
def preview(
    ctx: Ctx,
    actor: CurrentActor,
    name: str,
    limit: Annotated[int, Query(ge=0, le=service.MAX_PREVIEW_ROWS)] = 20,
    fields: Annotated[list[str] | None, Query()] = None,
) -> PreviewPublic:
    """The first members, ordered by key, and the segment's size."""
    result = service.preview_segment(ctx, actor, name, limit=limit, fields=fields)
    columns, rows = rows_of(result.rows)
    return PreviewPublic(
        segment=result.segment, size=result.size, key_column=result.key_column,
        columns=columns, rows=rows,
    )  # fmt: skip


@router.get("/{name}/explain")
def explain(ctx: Ctx, actor: CurrentActor, name: str) -> ExplainPublic:
    """The member count of every rule and group."""
    return ExplainPublic.of(service.explain_segment(ctx, actor, name))


@router.get("/{name}/sql")
def sql(ctx: Ctx, actor: CurrentActor, name: str) -> SqlPublic:
    return SqlPublic(segment=name, sql=service.segment_sql(ctx, actor, name))


@router.get("/{name}/history")
def history(
    ctx: Ctx, actor: CurrentActor, name: str, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[EvaluationPublic]:
    """Past evaluations, newest first: the segment's size over time."""
    return [EvaluationPublic.of(e) for e in service.segment_history(ctx, actor, name, limit=limit)]
