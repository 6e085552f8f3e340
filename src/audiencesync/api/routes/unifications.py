"""``/unifications``: several datasets matched into one person per profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from audiencesync.api.deps import Ctx, CurrentActor, UnifiedId
from audiencesync.api.models import UnificationCreate, UnificationPublic, UnifiedExplanationPublic
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import UserInputError
from audiencesync.profiles import store
from audiencesync.profiles.unify import service as unify
from audiencesync.profiles.unify.rules import (
    UnificationRules,
    load_unification_text,
    parse_unification_rules,
)

router = APIRouter(prefix="/unifications", tags=["profiles"])


def _editor(actor: CurrentActor) -> Actor:
    """The caller, once the permission table lets them change datasets (before the body
    is read or the name looked up, so a viewer gets 403 rather than 422 or 404)."""
    require(actor, Action.EDIT_DATASETS)
    return actor


Editor = Annotated[Actor, Depends(_editor)]


def rules_of(rules: object, rules_text: str | None) -> UnificationRules:
    """The rules from a JSON object or YAML/JSON text (exactly one of them)."""
    if (rules is None) == (rules_text is None):
        raise UserInputError("give the rules as 'rules' (JSON) or 'rules_text' (YAML), not both.")
    if rules_text is not None:
        return load_unification_text(rules_text)
    return parse_unification_rules(rules)


@router.get("")
def list_unifications(ctx: Ctx, actor: CurrentActor) -> list[UnificationPublic]:
    return [UnificationPublic.of(v) for v in unify.list_unifications(ctx, actor)]


@router.post("", status_code=status.HTTP_201_CREATED)
def define(ctx: Ctx, actor: Editor, body: UnificationCreate) -> UnificationPublic:
    """Define (or redefine) a unification and compute it; its dataset has the same name."""
    rules = rules_of(body.rules, body.rules_text)
    sources = [unify.parse_source(s) for s in body.sources]
    return UnificationPublic.of(unify.unify(ctx, actor, body.name, sources=sources, rules=rules))


@router.get("/{name}")
def get_unification(ctx: Ctx, actor: CurrentActor, name: str) -> UnificationPublic:
    """The definition and the figures of the latest refresh."""
    return UnificationPublic.of(unify.get_unification(ctx, actor, name))


@router.post("/{name}/refresh")
def refresh(ctx: Ctx, actor: Editor, name: str) -> UnificationPublic:
    return UnificationPublic.of(unify.refresh(ctx, actor, name))


@router.get("/{name}/profiles/{unified_id}")
def explain(
    ctx: Ctx, actor: CurrentActor, name: str, unified_id: UnifiedId
) -> UnifiedExplanationPublic:
    """One unified profile's source records and the keys that joined them."""
    return UnifiedExplanationPublic.of(unify.explain(ctx, actor, name, unified_id))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove(ctx: Ctx, actor: Editor, name: str) -> None:
    """Remove the unification and its dataset (segments over it must go first)."""
    unify.get_unification(ctx, actor, name)
    store.remove(ctx, actor, name)
