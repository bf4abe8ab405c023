"""Managers' rules (issue #18): the list with versions, drafts from the KB's policy documents, approve or
reject a draft, write or edit a rule from an expression (validated on save), a preview against today's
CRM, and the audit. Managers and admins only (a rep gets 403); previews count and name only the customers
the manager may see. The logic is ``copilot.features.rules_admin.RulesAdmin``, shared with the CLI.

Rules are scoped (``team_id``; none = company-wide): a manager sees the company-wide rules and their team's,
creates and approves rules of their team, and edits only those (403 otherwise, also for the history of
another team's rule); an admin sees and edits everything and creates company-wide rules unless a
``team_id`` is given.

    GET  /api/rules                          {"rules" (each with "team_id","scope","editable"), "drafts", "versions"}
    POST /api/rules                          {"expression","action_type","description","enabled"?,"due_in_days"?,"team_id"?} → 201 rule
    PUT  /api/rules/{id}                     same body → the rule, its version + 1 (its scope is kept)
    GET  /api/rules/{id}/history             {"rule", "history": [audit lines]}
    POST /api/rules/preview                  {"expression","as_of"?,"team_id"?} → {"count","customers","names","message","as_of"}
    POST /api/rules/drafts                   re-draft from the KB's rules/policy documents → {"drafts"}
    POST /api/rules/drafts/{id}/approve      {"team_id"?} → {"approved", "rules"}
    POST /api/rules/drafts/{id}/reject       {"reason"?} → {"rejected"}
    GET  /api/rules/audit                    {"audit": [{"at","by","op","rules",…}]}
    GET  /dashboard/rules                    the managers' page
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from copilot.agent.ruleset import RulesError
from copilot.api.deps import ManagerDep, ServicesDep
from copilot.api.routes.web import MaybeUser, templates
from copilot.domain import ACTION_TYPES, User
from copilot.errors import AppError
from copilot.features.rules_admin import may_change, may_see

router = APIRouter(tags=["rules"])

ACTION_LABELS = {
    "schedule_visit": "安排拜访", "send_material": "发送资料", "care_task": "关怀任务", "escalate": "上报升级",
    "update_stage": "更新阶段", "follow_up_quote": "跟进报价", "involve_expert": "请专家支持", "other": "其他",
}  # fmt: skip


class RuleBody(BaseModel):
    expression: str = Field(max_length=2000)
    action_type: str = Field(max_length=40)
    description: str = Field(max_length=500)
    enabled: bool = True
    due_in_days: int = Field(default=3, ge=0, le=365)
    team_id: str | None = Field(default=None, max_length=64)  # an admin's new rule for one team


class PreviewBody(BaseModel):
    expression: str = Field(max_length=2000)
    as_of: str | None = Field(default=None, max_length=10)
    team_id: str | None = Field(default=None, max_length=64)


class ApproveBody(BaseModel):
    team_id: str | None = Field(default=None, max_length=64)


class RejectBody(BaseModel):
    reason: str = Field(default="", max_length=500)


def _owners(services: Any, user: User) -> set[str] | None:
    return services.users.visible_owner_ids(user)


def _invalid(exc: RulesError) -> AppError:
    return AppError("validation_error", str(exc))


def _as_of(value: str | None):
    from copilot.features.suggestions.suggester import parse_as_of

    return parse_as_of(value)  # 422 validation_error for a malformed day


def _rule_team(user: User, requested: str | None = None) -> str | None:
    """The scope a preview is counted for: a manager's rules are their team's; an admin's company-wide
    unless they name a team."""
    return requested if user.role == "admin" else user.team_id


def _readable_drafts(services: Any, user: User, drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The drafts whose source document ``user`` may read: a draft quotes its document, so a manager never
    sees (nor approves or rejects) one drafted from another team's document."""
    teams = services.users.visible_teams(user)
    if teams is None:
        return drafts
    from knowledge_base.retrieval import document_allowed

    kb = services.kb_if_cheap()  # the catalogue is enough: no embedding model for a listing
    docs = {d.path: d for d in kb.documents()} if kb is not None else {}
    return [
        d
        for d in drafts
        if (doc := docs.get((d.get("citation") or {}).get("source", ""))) is not None
        and document_allowed(doc, teams)
    ]


def _scoped_drafts(services: Any, user: User, drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    owners, team = _owners(services, user), _rule_team(user)
    admin = services.rules_admin
    return [
        {**d, "preview": admin.preview(d["expression"], owners=owners, team_id=team)}
        for d in _readable_drafts(services, user, drafts)
    ]


def overview(services: Any, user: User) -> dict[str, Any]:
    admin = services.rules_admin
    return {
        "rules": [{**r, "editable": may_change(user, r["team_id"])} for r in admin.list(user)],
        "drafts": _scoped_drafts(services, user, admin.pending()),
        "versions": admin.versions(),
    }


@router.get("/api/rules")
def list_rules(user: ManagerDep, services: ServicesDep) -> dict:
    """规则列表（全公司规则与本团队规则，含版本与适用范围）、待批准的草稿（附原文句子与本团队触发预览）、规则文件版本。"""
    return overview(services, user)


@router.post("/api/rules", status_code=201)
def create_rule(body: RuleBody, user: ManagerDep, services: ServicesDep) -> dict:
    """按条件表达式新建规则：保存前校验，表达式有误返回 422 与中文说明。经理新建的规则属于本团队；
    管理员默认新建全公司规则，可用 team_id 指定团队。"""
    try:
        rule = services.rules_admin.save_rule(rule_id=None, by=user.id, user=user, **body.model_dump())
    except RulesError as exc:
        raise _invalid(exc) from exc
    return {"rule": rule}


@router.post("/api/rules/preview")
def preview(body: PreviewBody, user: ManagerDep, services: ServicesDep) -> dict:
    """预览条件按当前 CRM 会对本团队多少客户触发（「将对 7 个客户触发」，附客户名）；管理员可用 team_id
    预览某个团队的规则。"""
    from copilot.agent.conditions import check_condition

    problem = check_condition(body.expression)
    if problem:
        raise AppError("validation_error", problem)
    return services.rules_admin.preview(
        body.expression,
        as_of=_as_of(body.as_of),
        owners=_owners(services, user),
        team_id=_rule_team(user, body.team_id),
    )


@router.post("/api/rules/drafts")
async def redraft(user: ManagerDep, services: ServicesDep) -> dict:
    """从知识库中的规则/制度文档重新起草规则（批准前不生效）。"""
    drafts = await run_in_threadpool(services.rules_admin.draft)
    return {"drafts": await run_in_threadpool(_scoped_drafts, services, user, drafts)}


@router.post("/api/rules/drafts/{draft_id}/approve")
def approve_draft(
    draft_id: str, user: ManagerDep, services: ServicesDep, body: ApproveBody | None = None
) -> dict:
    """批准一条规则草稿：写入规则文件（旧版本留存），记入审计；此后按该规则生成建议。经理批准的规则属于
    本团队（草稿若会修改全公司规则则 403）；管理员默认批准为全公司规则，可用 team_id 指定团队。"""
    admin = services.rules_admin
    if draft_id not in {d["id"] for d in _readable_drafts(services, user, admin.pending())}:
        raise AppError("not_found", f"找不到规则草稿：{draft_id[:64]}")
    try:
        done = admin.approve([draft_id], by=user.id, user=user, team_id=body.team_id if body else None)
    except RulesError as exc:
        raise _invalid(exc) from exc
    return {"approved": [d["id"] for d in done], "rules": admin.list(user)}


@router.post("/api/rules/drafts/{draft_id}/reject")
def reject_draft(
    draft_id: str, user: ManagerDep, services: ServicesDep, body: RejectBody | None = None
) -> dict:
    """驳回一条规则草稿（记入审计）。"""
    if draft_id not in {d["id"] for d in _readable_drafts(services, user, services.rules_admin.pending())}:
        raise AppError("not_found", f"找不到规则草稿：{draft_id[:64]}")
    try:
        done = services.rules_admin.reject([draft_id], by=user.id, reason=(body.reason if body else ""))
    except RulesError as exc:
        raise AppError("not_found", str(exc)) from exc
    return {"rejected": [d["id"] for d in done]}


@router.get("/api/rules/audit")
def audit(user: ManagerDep, services: ServicesDep) -> dict:
    """规则审计：谁在何时批准、驳回、新建或修改了哪条规则（经理只看到全公司和本团队规则的记录）。"""
    return {"audit": services.rules_admin.audit(user=user)}


@router.put("/api/rules/{rule_id}")
def edit_rule(rule_id: str, body: RuleBody, user: ManagerDep, services: ServicesDep) -> dict:
    """修改条件规则（版本号加一，旧规则文件留存）；表达式有误返回 422。经理只能修改本团队的规则，
    修改全公司规则或其他团队的规则返回 403。"""
    if rule_id not in {r["id"] for r in services.rules_admin.list()}:
        raise AppError("not_found", f"找不到规则：{rule_id[:64]}")
    try:
        rule = services.rules_admin.save_rule(rule_id=rule_id, by=user.id, user=user, **body.model_dump())
    except RulesError as exc:
        raise _invalid(exc) from exc
    return {"rule": rule}


@router.get("/api/rules/{rule_id}/history")
def rule_history(rule_id: str, user: ManagerDep, services: ServicesDep) -> dict:
    """一条规则的版本历史（审计记录）；其他团队的规则返回 403。"""
    rule = next((r for r in services.rules_admin.list() if r["id"] == rule_id), None)
    if rule is None:
        raise AppError("not_found", f"找不到规则：{rule_id[:64]}")
    if not may_see(user, rule["team_id"]):
        raise AppError("forbidden", "这是其他团队的规则，经理只能查看全公司和本团队的规则。")
    return {"rule": rule, "history": services.rules_admin.audit(rule_id, user=user)}


# -- the page ----------------------------------------------------------------------------------------
@router.get("/dashboard/rules", response_class=HTMLResponse, include_in_schema=False)
def rules_page(request: Request, user: MaybeUser, services: ServicesDep):
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if not user.is_manager:
        return templates.TemplateResponse(
            request, "rules.html", {"user": user, "forbidden": True}, status_code=403
        )
    data = overview(services, user)
    return templates.TemplateResponse(
        request,
        "rules.html",
        {
            **data,
            "user": user,
            "audit": services.rules_admin.audit(user=user)[:30],
            "teams": services.users.teams() if user.role == "admin" else None,  # an admin picks a scope
            "action_types": ACTION_TYPES,
            "action_labels": ACTION_LABELS,
        },  # fmt: skip
    )
