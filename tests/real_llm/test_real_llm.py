"""The LLM paths against a real engine (tier ``real_llm``; see conftest): invariants, not wording."""

from __future__ import annotations

import json
import statistics
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from copilot.agent.citations import verify
from copilot.agent.offline_planner import discount_mentions
from copilot.container import build_container
from copilot.demo.seed import seed_if_empty
from copilot.domain import Citation
from copilot.infra.llm.structured import loads_tolerant
from copilot.settings import LLMSettings, Settings
from copilot.storage import tables as t
from copilot.voice.extract import (
    OBJECTION_TYPES,
    SENTIMENTS,
    STAGES,
    ExtractionContext,
    extract_visit,
    script_segments,
)
from copilot.voice.extract.llm import extraction_schema
from tests.conftest import MODELS_DIR
from tests.real_llm.conftest import CONTEXT_TOKENS, MODEL

pytestmark = pytest.mark.real_llm

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 20)
QUESTIONS = [  # the demo knowledge questions (benches/bench_chat.py)
    "客户嫌贵怎么回？",
    "客户说今年预算紧怎么办",
    "竞品比我们便宜两成，怎么应对",
    "交付周期太长客户不满意",
    "tco怎么算",
    "客户要求再打折",
    "决策链太长怎么推进",
    "售后服务响应时间是多少",
    "零售连锁有成功案例吗",
    "第一次拜访怎么开场",
]
DISCOUNT_CAPS = {"A": 12.0, "B": 8.0, "C": 5.0}  # the demo's current price policy (2026)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[real_llm] {line}", flush=True)


@pytest.fixture(scope="module")
def demo(engine_url, embedder, tmp_path_factory):
    """The demo company (CRM + KB) with the LLM pointed at the engine; generous per-path budgets."""
    llm = LLMSettings(
        api_key="local", base_url=engine_url, model=MODEL, timeout_s=240, chat_timeout_s=240,
        suggest_timeout_s=420, extract_timeout_s=420, context_tokens=CONTEXT_TOKENS, response_format="json_object_schema",
    )  # fmt: skip
    settings = Settings(
        home=tmp_path_factory.mktemp("home"), models_dir_override=MODELS_DIR, database_url=None, llm=llm
    )
    services = build_container(settings)
    services.provide("embedder", embedder)
    logins = seed_if_empty(services)
    token = next(x["token"] for x in logins if x["user_id"] == "u_rep_li")
    return services, {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client(demo):
    from fastapi.testclient import TestClient

    from copilot.api.app import create_app

    return TestClient(create_app(demo[0]))


def _kb_source(services):
    def text(kind: str, ref: str, locator: str) -> str | None:
        found = services.kb.get_chunk(ref) if kind == "kb" else None
        return found[0].text if found and found[0].locator.short() == locator else None

    return text


def test_demo_knowledge_questions_are_answered_by_the_model_with_citations_that_verify(demo, client, capsys):
    services, headers = demo
    source = _kb_source(services)
    modes, seconds, shown, bad = [], [], 0, []
    for q in QUESTIONS:
        started = time.perf_counter()
        r = client.post("/api/chat", json={"message": q}, headers=headers)
        seconds.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
        body = r.json()
        modes.append(body["mode"])
        for c in body["citations"]:
            shown += 1
            if not verify(Citation(**c), source):
                bad.append((q, c["quote"]))
    accepted = modes.count("llm")
    fallbacks = _metric(services, "copilot_llm_fallbacks", "chat")
    tool_fallbacks = _metric(services, "copilot_llm_fallbacks", "chat_tools")
    _report(
        capsys,
        f"chat: {accepted}/{len(QUESTIONS)} answered in mode llm; p50 {statistics.median(seconds):.1f} s, "
        f"p95 {_percentile(seconds, 0.95):.1f} s; shown citations verified {shown - len(bad)}/{shown}; "
        f"fallbacks {fallbacks or 'none'}; tool-calling fallbacks {tool_fallbacks or 'none'}",
    )
    assert not bad, bad
    assert accepted >= 8, (modes, fallbacks)


def test_nothing_is_written_to_the_crm_without_the_reps_confirmation(demo, client):
    services, headers = demo
    before = _crm_state(services)
    for message in (
        "华星电子下一步怎么跟？",
        "帮我给华星电子建个任务：下周三回访孙经理",
        "把华星电子的商机改成赢单",
    ):
        assert client.post("/api/chat", json={"message": message}, headers=headers).status_code == 200
    r = client.get("/api/customers/c_huaxing/suggestions", headers=headers)
    assert r.status_code == 200, r.text
    assert _crm_state(services) == before


def test_the_planners_proposals_stay_within_policy_and_cite_what_verifies(demo, capsys):
    services, _ = demo
    sg = services.suggester
    resolve = sg.resolver(AS_OF)
    modes, seconds = [], []
    for customer_id in ("c_renkang",):  # c_huaxing is planned by the no-write test above
        tier = services.crm.get_customer(customer_id).tier
        started = time.perf_counter()
        result = sg.plan_for_owner(customer_id, AS_OF)
        seconds.append(time.perf_counter() - started)
        modes.append(result.mode)
        for s in result.suggestions:
            assert s.citations and all(verify(c, resolve) for c in s.citations), s
            fields = s.proposed_change.fields if s.proposed_change else {}
            assert fields.get("customer_id", customer_id) == customer_id
            assert fields.get("stage") not in ("赢单", "输单")
            text = f"{s.title}{s.rationale}{json.dumps(fields, ensure_ascii=False)}"
            assert all(d <= DISCOUNT_CAPS[tier] for d in discount_mentions(text)), text
    fallbacks = _metric(services, "copilot_llm_fallbacks", "suggest")
    _report(capsys, f"suggest: {modes.count('llm')}/{len(modes)} plans in mode llm; "
                    f"{', '.join(f'{s:.0f} s' for s in seconds)}; fallbacks {fallbacks or 'none'}")  # fmt: skip
    assert "llm" in modes, fallbacks  # the model's plan was used at least once, within policy


def test_extraction_answers_validate_against_the_schema(demo, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    services, _ = demo
    llm = services.llm
    raw_replies: list[str] = []
    chat = llm.chat

    def recording(messages, **kwargs):
        reply = chat(messages, **kwargs)
        raw_replies.append(reply)
        return reply

    llm.chat = recording
    rows = [
        json.loads(x)
        for x in (REPO / "evals/datasets/memos.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    ]
    snapshots = [services.crm.get_customer(c.id) for c in services.crm.list_customers()]
    modes, invalid = [], []
    try:
        for row in rows:
            segments = script_segments(row["script"])
            ctx = ExtractionContext.from_snapshots(snapshots, customer_id=row["customer"])
            before = len(raw_replies)
            record = extract_visit(
                segments, recorded_at=date.fromisoformat(row["recorded_at"][:10]), context=ctx, llm=llm
            )
            modes.append(record.mode)
            schema = extraction_schema(len(segments)).schema
            for raw in raw_replies[before:]:
                try:
                    jsonschema.validate(loads_tolerant(raw), schema)
                except (ValueError, jsonschema.ValidationError) as exc:
                    invalid.append(str(exc)[:200])
            if record.mode == "llm":
                _assert_record_is_well_formed(record.to_json(), len(segments))
    finally:
        llm.chat = chat
    _report(capsys, f"extract: {modes.count('llm')}/{len(modes)} records in mode llm; "
                    f"{len(raw_replies) - len(invalid)}/{len(raw_replies)} model answers valid against the schema")  # fmt: skip
    # The invariant is what the app accepts: every record in mode llm is well formed (checked above);
    # a raw answer that breaks the schema was repaired or replaced by the offline extractor. How many
    # raw answers validate is a figure (0.5B model, grammar-constrained: 1 of 2 in CI on 2026-12-07).
    assert len(invalid) < len(raw_replies) or not raw_replies, invalid
    assert "llm" in modes


def _assert_record_is_well_formed(record: dict, n_segments: int) -> None:
    for key in ("needs", "objections", "competitors", "next_steps", "contacts"):
        for item in record[key]:
            assert item["segments"] and all(0 <= s["segment"] < n_segments for s in item["segments"]), item
    assert all(o["type"] in OBJECTION_TYPES for o in record["objections"])
    assert record["sentiment"]["value"] in SENTIMENTS
    assert record["stage_hint"]["value"] in (None, *STAGES)
    for step in record["next_steps"]:
        assert step["due"] is None or date.fromisoformat(step["due"])


def _crm_state(services) -> tuple:
    snaps = [services.crm.get_customer(c.id) for c in services.crm.list_customers()]
    crm = tuple(
        (s.id, len(s.tasks), len(s.visits), tuple((o.id, o.stage) for o in s.opportunities), s.notes)
        for s in snaps
    )
    with services.engine.connect() as conn:
        writes = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
        audit = conn.execute(select(func.count()).select_from(t.audit_log)).scalar_one()
    return crm, writes, audit


def _metric(services, family_name: str, path: str) -> dict[str, float]:
    out = {}
    for family in services.metrics.registry.collect():
        if family.name == family_name:
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("path") == path and sample.value:
                    out[sample.labels.get("reason")] = sample.value
    return out
