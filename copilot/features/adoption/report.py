"""Adoption for a viewer: scoping (a manager sees the team, an admin everyone, a rep nothing), the
§5.5 summary, the dashboard's full report, drill-down rows and CSV tables."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from connectors.crm.base import CRM, CustomerSnapshot
from copilot.domain import User
from copilot.errors import AppError
from copilot.features.adoption import metrics as m
from copilot.features.adoption.annotations import VERDICTS, AnnotationStore, annotation_counts
from copilot.features.adoption.events import SuggestionRecord, load_records
from copilot.features.adoption.outcomes import DEFAULT_WINDOW_DAYS, MIN_CLOSED_PER_GROUP, outcomes
from copilot.features.adoption.ratings import LABELS, RatingStore
from copilot.identity.users import UserDirectory
from copilot.storage import tables as t

logger = logging.getLogger(__name__)

ACTION_LABELS = {
    "schedule_visit": "安排拜访",
    "send_material": "发送资料",
    "care_task": "客情维护",
    "escalate": "升级处理",
    "update_stage": "更新阶段",
    "follow_up_quote": "跟进报价",
    "involve_expert": "引入专家",
    "other": "其他",
}
CHANNEL_LABELS = {
    "web": "网页",
    "wecom": "企业微信",
    "dingtalk": "钉钉",
    "digest": "每日摘要",
    "cli": "命令行",
}
OUTCOME_LABELS = {
    "accepted": "采纳",
    "edited": "修改后采纳",
    "dismissed": "主动忽略",
    "ignored": "7天未处理",
    "pending": "待处理",
    "not_shown": "未展示",
}


class AdoptionService:
    def __init__(self, engine: Engine, users: UserDirectory, crm: CRM | None,
                 *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self.engine = engine
        self.users = users
        self.crm = crm
        self.clock = clock
        self.ratings = RatingStore(engine)
        self.annotations = AnnotationStore(engine)

    # -- scope ----------------------------------------------------------------------------
    def owner_ids(self, viewer: User, filters: m.Filters) -> set[str] | None:
        """Whose suggestions ``viewer`` may count (None = everyone's); 403 outside that."""
        if not viewer.is_manager:
            raise AppError("forbidden", "采纳率看板仅限经理或管理员查看。")
        if viewer.role == "admin":
            return None
        if filters.team and filters.team != viewer.team_id:
            raise AppError("forbidden", "经理只能查看本团队的数据。")
        owners = self.users.team_members(viewer.team_id) | {viewer.id}
        if filters.rep and filters.rep not in owners:
            raise AppError("forbidden", "该销售不在您的团队中。")
        return owners

    def records(self, viewer: User, filters: m.Filters) -> list[SuggestionRecord]:
        owners = self.owner_ids(viewer, filters)
        return filters.apply(load_records(self.engine, user_ids=owners))

    def _names(self) -> tuple[dict[str, str], dict[str, str]]:
        with self.engine.connect() as conn:
            users = {r.id: r.name for r in conn.execute(select(t.users.c.id, t.users.c.name))}
            teams = {r.id: r.name for r in conn.execute(select(t.teams.c.id, t.teams.c.name))}
        return users, teams

    # -- the §5.5 contract ------------------------------------------------------------------
    def summary(self, viewer: User, filters: m.Filters) -> dict[str, Any]:
        records, now = self.records(viewer, filters), self.clock()
        return {
            **m.counts(records, now),
            "by_rep": m.breakdown(records, now, "rep_id", lambda r: [r.user_id]),
            "by_action_type": m.breakdown(records, now, "action_type", lambda r: [r.action_type]),
            "by_document": m.breakdown(records, now, "source", lambda r: r.documents),
        }

    # -- the dashboard ---------------------------------------------------------------------
    def _snapshots(self, records: list[SuggestionRecord]) -> tuple[dict[str, CustomerSnapshot | None], bool]:
        snaps: dict[str, CustomerSnapshot | None] = {}
        if self.crm is None:
            return snaps, False
        try:
            for cid in sorted({r.customer_id for r in records}):
                snaps[cid] = self.crm.get_customer(cid)
        except Exception as exc:  # a remote CRM being down must not take the dashboard with it
            logger.warning("outcomes: CRM unavailable (%s)", type(exc).__name__)
            return {}, False
        return snaps, True

    def report(self, viewer: User, filters: m.Filters, *, window_days: int = DEFAULT_WINDOW_DAYS,
               min_closed: int = MIN_CLOSED_PER_GROUP) -> dict[str, Any]:  # fmt: skip
        owners = self.owner_ids(viewer, filters)
        records, now = filters.apply(load_records(self.engine, user_ids=owners)), self.clock()
        user_names, team_names = self._names()
        ratings = self.ratings.per_document(owners)
        notes = self.annotations.for_suggestions({r.id for r in records})
        snaps, crm_ok = self._snapshots(records)
        result = outcomes(records, snaps, now, window_days=window_days, min_closed=min_closed)
        if not crm_ok:
            result["note"] = "CRM 暂不可用，无法关联商机结果。" + result["note"]

        def named(rows: list[dict[str, Any]], key: str, names: dict[str, str]) -> list[dict[str, Any]]:
            return [{**row, "name": names.get(row[key], row[key] or "未知")} for row in rows]

        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "scope": {"role": viewer.role, "team": None if viewer.role == "admin" else viewer.team_id},
            "filters": _filters_json(filters),
            "totals": m.counts(records, now),
            "time_to_action": m.time_to_action(records),
            "trend": m.trend(records, now),
            "by_rep": named(m.breakdown(records, now, "rep_id", lambda r: [r.user_id]), "rep_id", user_names),
            "by_team": named(
                m.breakdown(records, now, "team_id", lambda r: [r.team_id]), "team_id", team_names
            ),
            "by_action_type": named(
                m.breakdown(records, now, "action_type", lambda r: [r.action_type]),
                "action_type",
                ACTION_LABELS,
            ),
            "by_channel": named(
                m.breakdown(records, now, "channel", lambda r: [r.channel]), "channel", CHANNEL_LABELS
            ),
            "by_document": m.breakdown(records, now, "source", lambda r: r.documents),
            "knowledge_reuse": m.knowledge_reuse(records, now, ratings),
            "dismissed": m.most_dismissed(records, now),
            "dismiss_reasons": m.dismiss_reasons(records, now),
            "annotations": annotation_counts(notes),
            "outcomes": result,
        }

    def drill(self, viewer: User, filters: m.Filters, *, outcome: str | None = None,
              limit: int = 200) -> list[dict[str, Any]]:  # fmt: skip
        """The suggestions behind a number, with their citations and managers' annotations."""
        records, now = self.records(viewer, filters), self.clock()
        if outcome == "adopted":
            records = [r for r in records if r.outcome(now) in ("accepted", "edited")]
        elif outcome == "applied":
            records = [r for r in records if r.applied_at is not None]
        elif outcome:
            records = [r for r in records if r.outcome(now) == outcome]
        records.sort(key=lambda r: r.shown_at or now, reverse=True)
        records = records[:limit]
        user_names, _ = self._names()
        snaps, _ = self._snapshots(records)  # names for people; the id stays for scripts (CRM down: ids)
        notes = self.annotations.for_suggestions({r.id for r in records})
        rows = []
        for r in records:
            out = r.outcome(now)
            rows.append(
                {
                    "id": r.id,
                    "rep_id": r.user_id,
                    "rep_name": user_names.get(r.user_id, r.user_id),
                    "team_id": r.team_id,
                    "customer_id": r.customer_id,
                    "customer_name": snap.name if (snap := snaps.get(r.customer_id)) else r.customer_id,
                    "action_type": r.action_type,
                    "action_label": ACTION_LABELS.get(r.action_type, r.action_type),
                    "title": r.title,
                    "channel": r.channel,
                    "shown_at": r.shown_at.isoformat(timespec="seconds") if r.shown_at else None,
                    "outcome": out,
                    "outcome_label": OUTCOME_LABELS[out],
                    "applied": r.applied_at is not None,
                    "hours_to_action": round(h, 2) if (h := r.hours_to_action) is not None else None,
                    "dismiss_reason": r.dismiss_reason,
                    "comment": r.comment,
                    "citations": [dict(c) for c in r.citations],
                    "annotations": [a.to_json() for a in notes.get(r.id, [])],
                }
            )
        return rows

    # -- CSV ---------------------------------------------------------------------------------
    def table(self, viewer: User, filters: m.Filters, name: str) -> list[dict[str, Any]]:
        """One exportable table as flat rows."""
        if name == "suggestions":
            return [
                {**{k: v for k, v in row.items() if k not in ("citations", "annotations")},
                 "citations": "；".join(f"{c.get('label') or c.get('source')}「{c.get('quote', '')}」" for c in row["citations"]),
                 "annotations": "；".join(f"{a['verdict_label']}：{a['note']}" for a in row["annotations"])}
                for row in self.drill(viewer, filters, limit=100_000)
            ]  # fmt: skip
        if name == "ratings":
            owners = self.owner_ids(viewer, filters)
            rows = [r.to_json() for r in self.ratings.list(owners, filters.document)]
            return [{**r, "rating": LABELS[r["rating_code"]]} for r in rows]
        if name == "annotations":
            rows = self.drill(viewer, filters, limit=100_000)
            return [
                {"suggestion_id": row["id"], "rep_id": row["rep_id"], "action_type": row["action_type"],
                 "title": row["title"], "reviewer_id": a["user_id"], "verdict": a["verdict"],
                 "verdict_label": VERDICTS[a["verdict"]], "note": a["note"], "created_at": a["created_at"]}
                for row in rows for a in row["annotations"]
            ]  # fmt: skip
        report = self.report(viewer, filters)
        if name == "summary":
            return [
                {
                    **report["totals"],
                    **{f"time_to_action_{k}": v for k, v in report["time_to_action"].items()},
                }
            ]
        if name == "outcomes":
            groups = report["outcomes"]["groups"]
            return [{"group": g, **v, "note": report["outcomes"]["note"]} for g, v in groups.items()]
        if name == "dismissed":
            return [
                {**{k: v for k, v in row.items() if k not in ("reasons", "comments", "suggestion_ids")},
                 "reasons": "；".join(f"{x['reason']}×{x['count']}" for x in row["reasons"]),
                 "comments": "；".join(row["comments"])}
                for row in report["dismissed"]
            ]  # fmt: skip
        if name in TABLES:
            return report[name]
        raise AppError("not_found", f"没有名为 {name} 的表；可选：{'、'.join(EXPORTS)}")

    def eval_cases(self, viewer: User, filters: m.Filters) -> list[dict[str, Any]]:
        """Annotated suggestions in scope → DESIGN §5.3 suggest cases."""
        from copilot.features.adoption.annotations import eval_case

        owners = self.owner_ids(viewer, filters)
        with self.engine.connect() as conn:
            query = select(t.suggestions)
            if owners is not None:
                query = query.where(t.suggestions.c.user_id.in_(sorted(owners)))
            rows = {r.id: r for r in conn.execute(query)}
        notes = self.annotations.for_suggestions(set(rows))
        return [eval_case(rows[sid], a) for sid in sorted(notes) for a in notes[sid]]


TABLES = ("trend", "by_rep", "by_team", "by_action_type", "by_channel", "by_document", "knowledge_reuse")
EXPORTS = ("summary", *TABLES, "dismissed", "outcomes", "suggestions", "ratings", "annotations")


def _filters_json(f: m.Filters) -> dict[str, Any]:
    return {
        "team": f.team,
        "rep": f.rep,
        "action_type": f.action_type,
        "document": f.document,
        "channel": f.channel,
        "from": f.date_from.isoformat() if f.date_from else None,
        "to": f.date_to.isoformat() if f.date_to else None,
    }


def default_range(now: datetime, days: int = 90) -> tuple[Any, Any]:
    return (now - timedelta(days=days)).date(), now.date()
