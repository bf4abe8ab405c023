"""A synthetic suggestion history for the demo company, so the dashboard has something to show.

``seed_demo_adoption(engine, crm)`` writes suggestions (ids ``sg_demo_…``) with shown / accepted /
edited / dismissed / applied events spread over the last weeks, a few talk-track ratings and a few
managers' annotations. It cites real chunks of the ingested demo KB and runs once (idempotent).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select

from connectors.crm.base import CRM
from copilot.features.adoption.events import DISMISS_REASONS
from copilot.storage import tables as t
from copilot.storage.tables import suggestion_annotations, talk_track_ratings

TITLES = {
    "schedule_visit": ("安排一次{c}现场拜访，确认决策链", "约{c}技术负责人做方案复盘"),
    "send_material": ("给{c}发送同行业成功案例", "向{c}发送最新版产品白皮书"),
    "care_task": ("{c}采购额下降，安排客情回访", "节前给{c}关键联系人做关怀"),
    "escalate": ("{c}交付问题升级到区域经理",),
    "follow_up_quote": ("跟进{c}报价反馈，准备让步空间", "{c}报价已发出 14 天未回复，电话跟进"),
    "involve_expert": ("邀请售前专家参加{c}技术交流",),
    "update_stage": ("{c}已确认需求，建议推进到方案报价",),
}
COMMENTS = ("", "客户最近在换负责人", "上周已经拜访过", "引用的价格政策是旧版")


def seed_demo_adoption(engine: Engine, crm: CRM, *, now: datetime | None = None, weeks: int = 8,
                       seed: int = 7) -> int:  # fmt: skip
    """Write the demo history once; returns the number of suggestions written (0 when already there)."""
    from knowledge_base.catalog import kb_chunks, kb_documents

    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).where(t.suggestions.c.id.like("sg_demo_%"))).scalar():
            return 0
        chunks = conn.execute(
            select(kb_chunks.c.id, kb_chunks.c.doc_path, kb_chunks.c.text, kb_documents.c.title)
            .select_from(kb_chunks.join(kb_documents, kb_documents.c.path == kb_chunks.c.doc_path))
            .where(kb_documents.c.doc_type.in_(("talk_track", "battlecard", "case", "product", "faq", "objection")))
            .order_by(kb_chunks.c.id)
        ).all() or conn.execute(
            select(kb_chunks.c.id, kb_chunks.c.doc_path, kb_chunks.c.text, kb_documents.c.title)
            .select_from(kb_chunks.join(kb_documents, kb_documents.c.path == kb_chunks.c.doc_path))
            .order_by(kb_chunks.c.id)
        ).all()  # fmt: skip
        managers = conn.execute(
            select(t.users.c.id, t.users.c.team_id).where(t.users.c.role == "manager")
        ).all()
        teams = dict(conn.execute(select(t.users.c.id, t.users.c.team_id)).all())
    rng = random.Random(seed)
    # A few documents carry most citations, as in real use.
    by_doc: dict[str, list[Any]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_path, []).append(c)
    docs = sorted(by_doc)[:12]
    customers = [c for c in crm.list_customers() if c.owner_user_id]
    suggestions, events, ratings, notes = [], [], [], []
    n = 0
    for week in range(weeks):
        progress = week / max(1, weeks - 1)  # adoption grows as reps get used to it
        for cust in customers:
            for _ in range(rng.randint(1, 3)):
                n += 1
                sid = f"sg_demo_{n:04d}"
                action = rng.choice(sorted(TITLES))
                short = cust.name.split("（")[0][:6]
                title = rng.choice(TITLES[action]).format(c=short)
                shown = now - timedelta(
                    days=7 * (weeks - week) - rng.uniform(0, 6.5), hours=rng.uniform(0, 8)
                )
                citations = [
                    {"kind": "crm", "ref": f"{cust.id}.opportunities", "locator": "", "source": f"{cust.id}.opportunities",
                     "quote": cust.name, "label": f"依据CRM：{short}·商机"},
                ]  # fmt: skip
                if docs:
                    doc = docs[min(len(docs) - 1, int(rng.expovariate(0.35)))]
                    chunk = rng.choice(by_doc[doc])
                    quote = chunk.text.strip().replace("\n", " ")[:40]
                    citations.append({"kind": "kb", "ref": chunk.id, "locator": "", "source": doc, "quote": quote,
                                      "label": f"依据《{chunk.title}》"})  # fmt: skip
                suggestions.append({
                    "id": sid, "customer_id": cust.id, "user_id": cust.owner_user_id, "action_type": action,
                    "title": title, "rationale": "演示数据", "confidence": round(rng.uniform(0.5, 0.95), 2),
                    "citations": citations, "proposed_change": {"op": "create_task", "fields": {"title": title}},
                    "status": "proposed", "fingerprint": f"demo-{n}", "created_at": shown - timedelta(minutes=5),
                    "updated_at": shown,
                })  # fmt: skip
                ev = [("proposed", shown - timedelta(minutes=5), None, None)]
                ev.append(
                    ("shown", shown, rng.choice(("web", "web", "wecom", "wecom", "dingtalk", "digest")), None)
                )
                roll, at = rng.random(), shown + timedelta(hours=rng.expovariate(1 / 20))
                p_accept, p_edit, p_dismiss = 0.25 + 0.2 * progress, 0.12 + 0.05 * progress, 0.25
                status = "proposed"
                if roll < p_accept:
                    status = "accepted"
                elif roll < p_accept + p_edit:
                    status = "edited"
                elif roll < p_accept + p_edit + p_dismiss:
                    status = "dismissed"
                if status != "proposed" and at < now:
                    detail: dict[str, Any] | None = None
                    if status == "dismissed":
                        reason = rng.choice(DISMISS_REASONS[:-1])
                        detail = {"comment": (reason + "：" + rng.choice(COMMENTS)).rstrip("：")}
                    elif status == "edited":
                        detail = {"edited_fields": ["title"]}
                    ev.append((status, at, "web", detail))
                    if status in ("accepted", "edited") and rng.random() < 0.6:
                        ev.append(
                            (
                                "applied",
                                at + timedelta(minutes=rng.randint(1, 90)),
                                "web",
                                {"op": "create_task"},
                            )
                        )
                        status = "applied"
                    suggestions[-1]["status"] = status
                for name, when, channel, detail in ev:
                    if when <= now:
                        events.append({"suggestion_id": sid, "user_id": cust.owner_user_id, "event": name,
                                       "channel": channel, "detail": detail, "created_at": when})  # fmt: skip
                kb_cites = [c for c in citations if c["kind"] == "kb"]
                if kb_cites and status != "proposed" and rng.random() < 0.35:
                    good = status != "dismissed"
                    rating = rng.choice(
                        ("effective", "effective", "partial") if good else ("ineffective", "partial")
                    )
                    ratings.append({"chunk_id": kb_cites[0]["ref"], "source": kb_cites[0]["source"],
                                    "user_id": cust.owner_user_id, "suggestion_id": sid, "rating": rating,
                                    "reason": {"effective": "客户认可，推进顺利", "partial": "思路对，数据要更新",
                                               "ineffective": "客户不买账"}[rating],
                                    "created_at": shown + timedelta(days=1)})  # fmt: skip
                mgr = next((m for m in managers if m.team_id == teams.get(cust.owner_user_id)), None)
                if mgr and rng.random() < 0.08:
                    verdict = rng.choice(("correct", "correct", "wrong", "harmful"))
                    notes.append({"suggestion_id": sid, "user_id": mgr.id, "verdict": verdict,
                                  "note": {"correct": "思路正确", "wrong": "时机不对，客户在走内部流程",
                                           "harmful": "引用了过期价格政策，可能造成报价失误"}[verdict],
                                  "created_at": shown + timedelta(days=2)})  # fmt: skip
    seen: set[tuple[str, str]] = set()
    ratings = [r for r in reversed(ratings) if (r["user_id"], r["chunk_id"]) not in seen
               and not seen.add((r["user_id"], r["chunk_id"]))]  # fmt: skip
    with engine.begin() as conn:
        if suggestions:
            conn.execute(insert(t.suggestions), suggestions)
        if events:
            conn.execute(insert(t.suggestion_events), events)
        if ratings:
            conn.execute(insert(talk_track_ratings), ratings)
        if notes:
            conn.execute(insert(suggestion_annotations), notes)
    return len(suggestions)
