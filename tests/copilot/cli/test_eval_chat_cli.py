"""`copilot eval chat --dialogues FILE --json` (DESIGN §5.7) on the small CRM: the exact keys, and the
measures moved by what the engine really did (a confirmed change counts as a write, others do not)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app

DIALOGUES = [
    {"id": "d1", "user": "rep_a", "as_of": "2026-11-20", "turns": [
        {"say": "给华星建个任务：下周三前发报价", "expect": {"intent": "command", "customer_id": "c_a1",
         "proposed_change": {"op": "create_task", "customer_id": "c_a1", "due": "2026-11-25", "title_has": ["报价"]}}},
        {"say": "确认", "expect": {"intent": "confirm", "writes": 1}},
        {"say": "确认", "expect": {"intent": "confirm", "writes": 0}},
    ]},
    {"id": "d2", "user": "rep_a", "as_of": "2026-11-20", "turns": [
        {"say": "南山零售最近怎么样？", "expect": {"customer_id": None, "not_visible": "c_b1"}},
        {"say": "你好", "expect": {"intent": "smalltalk"}},
    ]},
]  # fmt: skip
KEYS = {"n_dialogues", "n_turns", "intent_accuracy", "customer_accuracy", "change_accuracy", "unconfirmed_writes",
        "citation_validity", "p95_ms"}  # fmt: skip


def test_eval_chat_prints_the_contract_keys_and_real_measures(crm_services, tmp_path):
    crm_services.provide("kb", None)
    common._services["s"] = crm_services
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in DIALOGUES), encoding="utf-8")

    result = CliRunner().invoke(app, ["eval", "chat", "--dialogues", str(path), "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= KEYS
    assert (doc["n_dialogues"], doc["n_turns"]) == (2, 5)
    assert doc["intent_accuracy"] == 1.0 and doc["customer_accuracy"] == 1.0 and doc["change_accuracy"] == 1.0
    assert doc["unconfirmed_writes"] == 0 and doc["leaks"] == 0 and doc["writes_accuracy"] == 1.0
