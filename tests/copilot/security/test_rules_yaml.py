"""Issue #21, row 6: PUT /api/suggestion-rules refuses YAML aliases and anchors (a 478-byte alias bomb
expanded to 42 MB), oversized documents and documents outside the schema; nothing is saved then."""

from __future__ import annotations

import pytest

from copilot.agent.rules import default_rules_text
from tests.copilot.conftest import token_for

# Nine levels of ten aliases each: 10**9 "lol"s once expanded.
BOMB = (
    "lol: &a0 [lol]\n"
    + "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    + "rules: [*a8]\n"
)


def _put(client, services, body, user="admin"):
    return client.put("/api/suggestion-rules", json=body, headers=token_for(services, user))


def _saved(services) -> bool:
    return (services.settings.home / "rules.yaml").exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"yaml": BOMB}, "锚点"),
        ({"yaml": "rules: []\nx: &anchor 1\n"}, "锚点"),
        (
            {"yaml": default_rules_text() + "\n# " + "填充" * 40_000},
            None,
        ),  # over 64 KB: the request model refuses it
        (
            {
                "yaml": "rules:\n  - {id: a, kind: visit_cadence, action_type: other, params: {p: {q: {r: 1}}}}\n"
            },
            "params",
        ),
        ({"yaml": "rules:\n  - {id: a, kind: visit_cadence, action_type: other, note: x}\n"}, "不支持的字段"),
        (
            {
                "yaml": "rules: ["
                + ", ".join([f"{{id: r{i}, kind: visit_cadence, action_type: other}}" for i in range(101)])
                + "]"
            },
            "过多",
        ),
        (
            {
                "rules": {
                    "rules": [
                        {
                            "id": "a",
                            "kind": "visit_cadence",
                            "action_type": "other",
                            "description": "长" * 501,
                        }
                    ]
                }
            },
            "过长",
        ),
        ({"yaml": "[" * 5000 + "]" * 5000}, "嵌套过深"),
    ],
    ids=[
        "alias bomb",
        "anchor",
        "too large",
        "params too deep",
        "unknown key",
        "too many rules",
        "text too long",
        "deep nesting",
    ],
)
def test_unsafe_or_invalid_rules_are_422_and_not_saved(crm_services, client_for, body, words):
    client = client_for(crm_services)
    assert len(BOMB) < 600

    r = _put(client, crm_services, body)

    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"] == "validation_error" and (words is None or words in r.json()["detail"])
    assert not _saved(crm_services)
    served = client.get("/api/suggestion-rules", headers=token_for(crm_services, "rep_a"))
    assert served.status_code == 200 and len(served.text) < 64 * 1024


def test_valid_rules_are_saved(crm_services, client_for):
    client = client_for(crm_services)
    text = default_rules_text().replace("cadence_days: {A: 30", "cadence_days: {A: 21")
    r = _put(client, crm_services, {"yaml": text})
    assert r.status_code == 200, r.text
    assert _saved(crm_services) and r.json()["rules"]["rules"][0]["params"]["cadence_days"]["A"] == 21
