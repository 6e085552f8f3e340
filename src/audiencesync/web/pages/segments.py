"""Segments: list with sizes and sparklines; the rule builder and YAML editor; insights."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.api.routes.datasets import rows_of
from audiencesync.control.permissions import Action, require
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.profiles import store
from audiencesync.segments import service
from audiencesync.segments.rules import RuleNode, RulesError, load_rules_text, rules_to_yaml
from audiencesync.web import builder
from audiencesync.web.charts import sparkline
from audiencesync.web.common import CurrentPage, Form, FormError, Page, Posted, redirect, render

router = APIRouter()
HISTORY_POINTS = 20
EXAMPLE_YAML = (
    "all:\n  - {field: country, op: '=', value: GB}\n  - {field: age, op: '>=', value: 18}\n"
)


@router.get("/segments")
def list_segments(request: Request, page: CurrentPage) -> Response:
    views = service.list_segments(page.ctx, page.actor)
    lines = {}
    for view in views:
        history = service.segment_history(page.ctx, page.actor, view.name, limit=HISTORY_POINTS)
        lines[view.name] = sparkline([e.size for e in reversed(history)])
    return render(
        request, page, "segments.html", segments=views, sparklines=lines,
        datasets=store.list_datasets(page.ctx, page.actor), nav="segments",
    )  # fmt: skip


def _form(
    request: Request,
    page: Page,
    *,
    name: str,
    dataset: str | None,
    root: builder.Row,
    yaml_text: str,
    description: str,
    editing: bool,
    error: FormError = None,
    status: int = 200,
) -> Response:
    datasets = store.list_datasets(page.ctx, page.actor)
    if dataset is None and datasets:
        dataset = datasets[0].name
    columns: dict[str, str] = {}
    others: list[str] = []
    if dataset:
        columns = {c.name: c.type for c in store.get_dataset(page.ctx, page.actor, dataset).columns}
        others = [
            s.name
            for s in service.list_segments(page.ctx, page.actor, dataset=dataset)
            if s.name != name
        ]
    return render(
        request, page, "segment_form.html", invalid_rows=builder_rows(error),
        name=name, dataset=dataset, datasets=datasets,
        columns=columns, segment_names=others, root=root, operators=builder.OPERATORS,
        yaml_text=yaml_text, description=description, editing=editing, error=error,
        status=status, nav="segments",
    )  # fmt: skip


@router.get("/segments/new")
def new_segment(request: Request, page: CurrentPage) -> Response:
    require(page.actor, Action.EDIT_SEGMENTS)  # viewers get no form that refuses on submit
    return _form(
        request, page, name="", dataset=request.query_params.get("dataset"),
        root=builder.empty(), yaml_text=EXAMPLE_YAML, description="", editing=False,
    )  # fmt: skip


def builder_rows(error: FormError) -> set[str]:
    """The builder rows (``r.0.1``) a rule error is about (``any[0].all[1]``: the second
    row of the first group), so the form marks them."""
    if not isinstance(error, RulesError):
        return set()
    return {"r" + "".join(f".{n}" for n in re.findall(r"\[(\d+)\]", p)) for p in error.paths}


def _rules(page: Posted, root: builder.Row, yaml_text: str, dataset: str) -> RuleNode:
    if page.text("action") == "save-yaml":
        if not yaml_text:
            raise UserInputError("the YAML editor is empty: write a rule, or use the builder.")
        return load_rules_text(yaml_text)
    columns = {c.name: c.type for c in store.get_dataset(page.ctx, page.actor, dataset).columns}
    return builder.to_rule(root, columns)


def _handle(request: Request, page: Posted, *, editing: bool, name: str, dataset: str) -> Response:
    # Until the builder's fields are read (they can be tampered with), an empty builder
    # stands in, so a refusal still shows the form with the name, YAML and description.
    root, yaml_text = builder.empty(), page.text("rules_yaml")
    action = page.text("action") or "save"
    description = page.text("description")

    def again(error: FormError = None, status: int = 200) -> Response:
        return _form(
            request, page, name=name, dataset=dataset or None, root=root, yaml_text=yaml_text,
            description=description, editing=editing, error=error, status=status,
        )  # fmt: skip

    try:
        root = builder.from_form(page.values())
        if action.startswith(("add-", "remove:")):
            root = builder.apply(root, action)
            return again()
        if action == "dataset":
            root = builder.empty()
            return again()
        if action == "to-builder":
            root = builder.from_rule(load_rules_text(yaml_text))
            return again()
        if action == "to-yaml":
            columns = {
                c.name: c.type for c in store.get_dataset(page.ctx, page.actor, dataset).columns
            }
            yaml_text = rules_to_yaml(builder.to_rule(root, columns))
            return again()
        rules = _rules(page, root, yaml_text, dataset)
        if editing:
            view = service.update_segment(
                page.ctx, page.actor, name, rules=rules, description=description
            )
        else:
            view = service.create_segment(
                page.ctx, page.actor, name, dataset=dataset, rules=rules,
                description=description or None,
            )  # fmt: skip
    except AudiencesyncError as error:
        return again(error, error.http_status)
    page.flash(f"Segment {view.name} was saved.")
    return redirect(f"/segments/{view.name}")


@router.post("/segments/new")
def create_segment(request: Request, page: Form) -> Response:
    return _handle(
        request, page, editing=False, name=page.text("name"), dataset=page.text("dataset")
    )


@router.get("/segments/{name}")
def show_segment(request: Request, page: CurrentPage, name: str) -> Response:
    view = service.get_segment(page.ctx, page.actor, name)
    history = service.segment_history(page.ctx, page.actor, name, limit=HISTORY_POINTS)
    return render(
        request, page, "segment.html", segment=view, yaml_text=rules_to_yaml(view.rules),
        root=builder.from_rule(view.rules), history=history,
        sparkline=sparkline([e.size for e in reversed(history)], width=240, height=40),
        nav="segments",
    )  # fmt: skip


@router.get("/segments/{name}/edit")
def edit_segment(request: Request, page: CurrentPage, name: str) -> Response:
    require(page.actor, Action.EDIT_SEGMENTS)
    view = service.get_segment(page.ctx, page.actor, name)
    return _form(
        request, page, name=view.name, dataset=view.dataset, root=builder.from_rule(view.rules),
        yaml_text=rules_to_yaml(view.rules), description=view.description or "", editing=True,
    )  # fmt: skip


@router.post("/segments/{name}/edit")
def update_segment(request: Request, page: Form, name: str) -> Response:
    view = service.get_segment(page.ctx, page.actor, name)
    return _handle(request, page, editing=True, name=view.name, dataset=view.dataset)


@router.post("/segments/{name}/remove")
def remove_segment(page: Form, name: str) -> Response:
    service.remove_segment(page.ctx, page.actor, name)
    page.flash(f"Segment {name} was removed.")
    return redirect("/segments")


@router.get("/segments/{name}/explain")
def explain(request: Request, page: CurrentPage, name: str) -> Response:
    """Per-rule counts (a fragment, or a page without JavaScript)."""
    tree = service.explain_segment(page.ctx, page.actor, name)
    fragment = bool(request.headers.get("hx-request"))
    return render(
        request, page, "segment_explain.html", tree=tree, name=name, fragment=fragment,
        nav="segments",
    )  # fmt: skip


@router.get("/segments/{name}/preview")
def preview(request: Request, page: CurrentPage, name: str) -> Response:
    result = service.preview_segment(page.ctx, page.actor, name, limit=20)
    columns, rows = rows_of(result.rows)
    fragment = bool(request.headers.get("hx-request"))
    return render(
        request, page, "segment_preview.html", preview=result, columns=columns, rows=rows,
        name=name, fragment=fragment, nav="segments",
    )  # fmt: skip


@router.get("/segments/{name}/count")
def count(request: Request, page: CurrentPage, name: str) -> Response:
    result = service.count_segment(page.ctx, page.actor, name)
    if request.headers.get("hx-request"):
        return Response(f"{result.size:,}", media_type="text/html")
    page.flash(f"Segment {name} has {result.size:,} profiles.")
    return redirect("/segments")
