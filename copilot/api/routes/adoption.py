"""Adoption analytics (DESIGN §5.5, §7): metrics for managers, the /dashboard page, CSV export,
talk-track ratings from reps and managers' annotations of suggestions."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from copilot.api.deps import ManagerDep, ServicesDep, UserDep
from copilot.api.routes.web import MaybeUser, templates
from copilot.errors import AppError
from copilot.features.adoption.metrics import Filters
from copilot.features.adoption.outcomes import DEFAULT_WINDOW_DAYS
from copilot.features.adoption.ratings import RatingStore
from copilot.features.adoption.report import (
    ACTION_LABELS,
    CHANNEL_LABELS,
    EXPORTS,
    OUTCOME_LABELS,
)

router = APIRouter(tags=["adoption"])
OUTCOME_FILTERS = ("adopted", "accepted", "edited", "dismissed", "ignored", "pending", "applied")


_ZH_DATE = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")


def _date(value: str | None, name: str) -> date | None:
    """2026-11-20, as well as 2026年11月20日, 2026/11/20 and 2026.11.20 (the dashboard's text inputs)."""
    if not value:
        return None
    try:
        if m := _ZH_DATE.match(value):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise AppError(
            "validation_error", f"{name} 日期格式应为 YYYY-MM-DD 或 2026年11月20日：{value}"
        ) from exc


def zh_date(value: str | None) -> str:
    """``2026-11-20`` → ``2026年11月20日`` (how the dashboard shows a chosen day)."""
    if not value:
        return ""
    day = date.fromisoformat(value[:10])
    return f"{day.year}年{day.month}月{day.day}日"


def filters_from(
    team: str | None = None,
    rep: str | None = None,
    action_type: str | None = None,
    document: str | None = None,
    channel: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Filters:
    start, end = _date(date_from, "from"), _date(date_to, "to")
    if start and end and start > end:
        raise AppError("validation_error", "起始日期不能晚于结束日期。")
    return Filters(team=team or None, rep=rep or None, action_type=action_type or None,
                   document=document or None, channel=channel or None, date_from=start, date_to=end)  # fmt: skip


class FilterParams(BaseModel):
    team: str | None = None
    rep: str | None = None
    action_type: str | None = None
    document: str | None = None
    channel: str | None = None
    date_from: str | None = Field(default=None, alias="from")
    date_to: str | None = Field(default=None, alias="to")

    def filters(self) -> Filters:
        return filters_from(self.team, self.rep, self.action_type, self.document, self.channel,
                            self.date_from, self.date_to)  # fmt: skip


FilterQuery = Annotated[FilterParams, Query()]


@router.get("/api/adoption")
def adoption(user: ManagerDep, services: ServicesDep, q: FilterQuery) -> dict:
    """采纳率指标（经理看本团队，管理员看全部）：{"shown","accepted","edited","dismissed","ignored","applied",
    "adoption_rate","by_rep","by_action_type","by_document"}；采纳率 = (采纳 + 修改后采纳) / 展示。"""
    return services.adoption.summary(user, q.filters())


@router.get("/api/adoption/report")
def adoption_report(user: ManagerDep, services: ServicesDep, q: FilterQuery,
                    window_days: Annotated[int, Query(ge=1, le=365)] = DEFAULT_WINDOW_DAYS) -> dict:  # fmt: skip
    """看板的完整数据：趋势、按销售/团队/类型/渠道/文档拆分、知识复用、忽略原因、经理评审、商机结果（相关性）。"""
    return services.adoption.report(user, q.filters(), window_days=window_days)


@router.get("/api/adoption/suggestions")
def adoption_drill(user: ManagerDep, services: ServicesDep, q: FilterQuery,
                   outcome: Literal[OUTCOME_FILTERS] | None = None,  # type: ignore[valid-type]
                   limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict:  # fmt: skip
    """下钻：某个数字背后的建议及其依据、经理评审。"""
    rows = services.adoption.drill(user, q.filters(), outcome=outcome, limit=limit)
    return {"suggestions": rows, "count": len(rows)}


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel opens UTF-8 Chinese correctly with a BOM
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    writer = csv.DictWriter(buf, fieldnames=fields or ["empty"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                         for k, v in row.items()})  # fmt: skip
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/api/adoption/export/{name}.csv")
def adoption_csv(name: str, user: ManagerDep, services: ServicesDep, q: FilterQuery) -> Response:
    """导出表格为 CSV（UTF-8 BOM）：summary、trend、by_rep、by_team、by_action_type、by_channel、by_document、
    knowledge_reuse、dismissed、outcomes、suggestions、ratings、annotations。"""
    if name not in EXPORTS:
        raise AppError("not_found", f"没有名为 {name} 的表；可选：{'、'.join(EXPORTS)}")
    return _csv(services.adoption.table(user, q.filters(), name), f"adoption_{name}.csv")


@router.get("/api/adoption/eval-cases.jsonl")
def adoption_eval_cases(user: ManagerDep, services: ServicesDep, q: FilterQuery) -> Response:
    """经理评审过的建议导出为评测用例（DESIGN §5.3 suggest cases，JSONL）。"""
    cases = services.adoption.eval_cases(user, q.filters())
    body = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)
    return Response(body, media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="review_cases.jsonl"'})  # fmt: skip


# -- talk-track ratings ---------------------------------------------------------------------------
class RatingRequest(BaseModel):
    chunk_id: str = Field(min_length=1, max_length=191, description="被评价段落的 id（引用中的 ref）")
    rating: str = Field(description="有效 / 部分有效 / 无效")
    reason: str = Field(default="", max_length=1000)
    suggestion_id: str | None = Field(default=None, max_length=64)


@router.post("/api/kb/ratings")
def rate_talk_track(body: RatingRequest, user: UserDep, services: ServicesDep) -> dict:
    """销售评价一段话术/资料：有效 / 部分有效 / 无效（附原因）；评价会影响检索排序。"""
    store = RatingStore(services.engine)
    rating = store.rate(
        user, chunk_id=body.chunk_id, rating=body.rating, reason=body.reason,
        suggestion_id=body.suggestion_id, visible_teams=services.users.visible_teams(user),
    )  # fmt: skip
    kb = services.loaded("kb")  # only when already loaded: never load the models for a rating
    boosts = store.sync(kb)
    return {**rating.to_json(), "boost": boosts.get(body.chunk_id, 0.0)}


@router.get("/api/kb/ratings")
def list_ratings(user: UserDep, services: ServicesDep, source: str | None = None) -> dict:
    """评价列表：销售看自己的，经理看本团队，管理员看全部。"""
    owners = services.users.visible_owner_ids(user)
    return {"ratings": [r.to_json() for r in RatingStore(services.engine).list(owners, source)]}


# -- managers' review -----------------------------------------------------------------------------
class AnnotationRequest(BaseModel):
    verdict: str = Field(description="correct / wrong / harmful（正确 / 错误 / 有害）")
    note: str = Field(default="", max_length=2000)


@router.post("/api/suggestions/{suggestion_id}/annotations")
def annotate(suggestion_id: str, body: AnnotationRequest, user: ManagerDep, services: ServicesDep) -> dict:
    """经理评审一条建议：正确 / 错误 / 有害（附说明），计入指标并可导出为评测用例。"""
    store = services.adoption.annotations
    owners = services.users.visible_owner_ids(user)
    return store.annotate(user, suggestion_id, body.verdict, body.note, owner_ids=owners).to_json()


@router.get("/api/suggestions/{suggestion_id}/annotations")
def annotations(suggestion_id: str, user: ManagerDep, services: ServicesDep) -> dict:
    """经理查看一条建议的评审记录。"""
    store = services.adoption.annotations
    store.check_scope(suggestion_id, services.users.visible_owner_ids(user))
    return {
        "annotations": [a.to_json() for a in store.for_suggestions({suggestion_id}).get(suggestion_id, [])]
    }


# -- the dashboard page -----------------------------------------------------------------------------
@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, user: MaybeUser, services: ServicesDep, q: FilterQuery):
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if not user.is_manager:
        return templates.TemplateResponse(
            request, "dashboard.html", {"user": user, "forbidden": True}, status_code=403
        )
    service = services.adoption
    try:
        filters = q.filters()
        report = service.report(user, filters)
        error = None
    except AppError as exc:
        filters, error = Filters(), exc.detail
        report = service.report(user, filters)
    owners = services.users.visible_owner_ids(user)
    people, teams = service._names()
    base = {k: v for k, v in report["filters"].items() if v}

    def qs(**extra: Any) -> str:
        return urlencode({**base, **{k: v for k, v in extra.items() if v}})

    def week_end(start: str) -> str:
        return (date.fromisoformat(start) + timedelta(days=6)).isoformat()

    reps = sorted((uid, name) for uid, name in people.items() if owners is None or uid in owners)
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "user": user,
            "forbidden": False,
            "error": error,
            "report": report,
            "reps": reps,
            "teams": sorted(teams.items()) if user.role == "admin" else [],
            "action_labels": ACTION_LABELS,
            "channel_labels": CHANNEL_LABELS,
            "outcome_labels": OUTCOME_LABELS,
            "exports": EXPORTS,
            "qs": qs,
            "week_end": week_end,
            "zh_date": zh_date,
        },
    )
