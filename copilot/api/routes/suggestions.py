"""Suggestions per customer, feedback, apply (DESIGN §5.5), the daily digest and the manager's rules."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import yaml
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from copilot.agent.rules_schema import MAX_RULES_BYTES
from copilot.agent.ruleset import RulesError
from copilot.api.deps import AdminDep, ServicesDep, UserDep
from copilot.errors import AppError
from copilot.features.rules_admin import may_see

router = APIRouter(prefix="/api", tags=["suggestions"])


def _render(result: Any, customer_id: str, as_of: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "as_of": as_of,
        "mode": result.mode,
        "suggestions": [s.to_json() for s in result.suggestions],
    }
    if result.note:
        data["note"] = result.note
    return data


@router.get("/customers/{customer_id}/suggestions")
def customer_suggestions(
    customer_id: str, user: UserDep, services: ServicesDep, request: Request, as_of: str | None = None
) -> dict:
    """该客户当前的下一步建议（刷新后返回未处理的建议；同一建议不会重复记录）。"""
    suggester = services.suggester
    result = suggester.for_customer(user, customer_id, as_of=as_of, channel="web")
    from copilot.features.suggestions.suggester import parse_as_of

    return _render(result, customer_id, parse_as_of(as_of).isoformat())


class FeedbackRequest(BaseModel):
    action: Literal["accept", "edit", "dismiss"]
    comment: str | None = Field(default=None, max_length=2000)
    edited: dict[str, Any] | None = None


@router.post("/suggestions/{suggestion_id}/feedback")
def feedback(suggestion_id: str, body: FeedbackRequest, user: UserDep, services: ServicesDep) -> dict:
    """采纳 / 修改后采纳 / 忽略一条建议。"""
    store = services.suggester.store
    return store.feedback(
        user.id, suggestion_id, body.action, comment=body.comment, edited=body.edited, channel="web"
    ).to_json()


class ApplyRequest(BaseModel):
    fields: dict[str, Any] | None = Field(default=None, description="修改后再确认：覆盖建议中的 CRM 字段")


@router.post("/suggestions/{suggestion_id}/apply")
def apply(suggestion_id: str, user: UserDep, services: ServicesDep, body: ApplyRequest | None = None) -> dict:
    """执行建议中的 CRM 变更（幂等：重复调用只写一次）；可带 fields 修改后一并确认（记录为修改）。"""
    fields = body.fields if body is not None else None
    return services.suggester.apply(user, suggestion_id, fields=fields, channel="web")


@router.get("/suggestions/digest")
def digest(user: UserDep, services: ServicesDep, as_of: str | None = None, limit: int = 10) -> dict:
    """每日摘要：名下（经理为本团队）客户中最值得先做的建议。"""
    if not 1 <= limit <= 50:
        raise AppError("validation_error", "limit 取值范围 1–50。")
    from copilot.features.suggestions.suggester import parse_as_of

    day = parse_as_of(as_of)  # 422 for a malformed or out-of-range day, even with no customers
    return {"suggestions": services.suggester.digest(user, as_of=day, limit=limit)}


@router.get("/suggestion-rules")
def get_rules(user: UserDep, services: ServicesDep) -> dict:
    """当前生效的跟进规则（YAML 原文与解析结果）：全公司规则与本团队规则，不含其他团队的规则。"""
    rules = services.suggester.rules
    ruleset = rules.load()
    shown = tuple(r for r in ruleset.rules if may_see(user, r.team_id))
    if len(shown) == len(ruleset.rules):
        return {"yaml": rules.text(), "rules": ruleset.to_json()}
    data = dataclasses.replace(ruleset, rules=shown).to_json()
    return {"yaml": yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "rules": data}


class RulesRequest(BaseModel):
    yaml: str | None = Field(default=None, max_length=MAX_RULES_BYTES)
    rules: dict[str, Any] | None = None


@router.put("/suggestion-rules")
def put_rules(body: RulesRequest, user: AdminDep, services: ServicesDep) -> dict:
    """管理员整体替换跟进规则文件（YAML 原文或 JSON）；校验通过才保存。整份文件含全公司规则与各团队的
    规则，经理请用 /api/rules 修改本团队的规则。"""
    payload = body.yaml if body.yaml is not None else body.rules
    if payload is None:
        raise AppError("validation_error", "请提供 yaml 或 rules。")
    try:
        ruleset = services.suggester.rules.save(payload)
    except RulesError as exc:
        raise AppError("validation_error", str(exc)) from exc
    return {"rules": ruleset.to_json()}
