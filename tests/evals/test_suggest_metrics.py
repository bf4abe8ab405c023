"""`run_suggest` arithmetic on a tiny hand-computed case."""

from evals.suggest import run_suggest

CASES = [
    {"customer_id": "c1", "as_of": "2026-11-20",
     "expected_actions": [{"action_type": "send_material", "must_cite": ["kb:a.md"]},
                          {"action_type": "escalate", "must_cite": ["memo:m1"]},
                          {"action_type": "schedule_visit", "must_cite": []}],
     "forbidden": [{"action_type": "update_stage", "detail": "赢单"}]},
]  # fmt: skip
SHOWN = [
    {"action_type": "send_material", "title": "发 TCO", "citations": [{"kind": "kb", "source": "a.md"}]},
    {"action_type": "escalate", "title": "上报", "citations": [{"kind": "crm", "ref": "c1.tasks"}]},
    {"action_type": "update_stage", "title": "改为赢单", "citations": []},
]


def test_recall_with_evidence_action_type_recall_forbidden_and_validity():
    out = run_suggest(CASES, suggest=lambda c, d: SHOWN, verify=lambda c, case: c["kind"] == "kb")
    assert out["expected_recall"] == round(1 / 3, 4)  # escalate lacks its memo, no visit at all
    assert out["action_type_recall"] == round(2 / 3, 4)  # send_material and escalate are there
    assert out["forbidden_hits"] == 1
    assert out["citation_validity"] == 0.5
