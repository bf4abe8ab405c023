"""Managers' rules: drafts read from the company's policy/rules documents, approval (nothing fires before),
the list, and a preview of how many customers a condition fires for today ("将对 7 个客户触发").

Drafts wait in ``$COPILOT_HOME/rule_drafts.json``; approving writes ``$COPILOT_HOME/rules.yaml`` through
``RuleStore.save`` (validated), keeps the previous file in ``rules_history/`` and appends who approved what
to ``rules_audit.jsonl``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from connectors.crm.base import CRM
from copilot.agent.rule_drafts import RuleDraft, draft_rules
from copilot.agent.rules import RuleStore
from copilot.agent.ruleset import Rule, RulesError
from copilot.agent.triggers import KINDS

if TYPE_CHECKING:
    from copilot.agent.facts import Facts
    from knowledge_base.base import KnowledgeBase

RULE_DOC_TYPES = ("rules", "policy")


@dataclass
class RulesAdmin:
    store: RuleStore
    home: Path
    kb: Callable[[], KnowledgeBase | None]
    crm: CRM
    facts: Callable[[Any, date], Facts]  # (snapshot, as_of) -> Facts (the suggester's)

    @property
    def drafts_path(self) -> Path:
        return self.home / "rule_drafts.json"

    # -- drafts ------------------------------------------------------------------------------------
    def draft(self) -> list[dict[str, Any]]:
        """Drafts from every current rules/policy document; stored for ``approve``; with a preview count."""
        kb = self.kb()
        drafts: list[RuleDraft] = []
        if kb is not None:
            docs = [d for d in kb.documents() if d.doc_type in RULE_DOC_TYPES]
            superseded = {d.supersedes for d in kb.documents() if d.supersedes}
            for doc in sorted(docs, key=lambda d: (d.doc_type != "rules", d.path)):
                if doc.path in superseded:
                    continue
                drafts += draft_rules(doc.path, kb.document_text(doc.path) or "")
        seen: set[tuple[str, str]] = set()
        unique = []
        for d in drafts:  # the rules document wins over a policy restating the same rule
            if (d.topic, d.action_type) not in seen:
                seen.add((d.topic, d.action_type))
                unique.append(d)
        out = [{**d.to_json(), "preview": self.preview(d.expression)} for d in unique]
        self.home.mkdir(parents=True, exist_ok=True)
        self.drafts_path.write_text(
            json.dumps({"drafts": out}, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        return out

    def pending(self) -> list[dict[str, Any]]:
        if not self.drafts_path.exists():
            return []
        return list(json.loads(self.drafts_path.read_text(encoding="utf-8")).get("drafts") or [])

    # -- approval ----------------------------------------------------------------------------------
    def approve(self, ids: Iterable[str], *, all_: bool = False, by: str = "cli") -> list[dict[str, Any]]:
        drafts = self.pending()
        wanted = set(ids)
        chosen = drafts if all_ else [d for d in drafts if d["id"] in wanted]
        missing = wanted - {d["id"] for d in drafts}
        if missing:
            raise RulesError(f"找不到规则草稿：{'、'.join(sorted(missing))}；请先运行 copilot rules draft")
        if not chosen:
            raise RulesError("没有可批准的规则草稿；请先运行 copilot rules draft")
        data = yaml.safe_load(self.store.text()) or {}
        rules: list[dict[str, Any]] = list(data.get("rules") or [])
        by_id = {r.get("id"): r for r in rules}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        meta = {"origin": "draft", "approved_by": by, "approved_at": now}
        for d in chosen:
            citation = dict(d.get("citation") or {})
            preset = by_id.get(d.get("preset"))
            if preset is not None:
                preset.update(enabled=True, citation=citation, meta={**meta, "draft_id": d["id"]})
                continue
            rule = {"id": d["id"], "kind": "condition", "enabled": True, "description": d["description"],
                    "action_type": d["action_type"], "expression": d["expression"], "citation": citation,
                    "params": {"due_in_days": 3}, "meta": {**meta, "draft_id": d["id"]}}  # fmt: skip
            if d["id"] in by_id:
                by_id[d["id"]].update(rule)
            else:
                rules.append(rule)
                by_id[d["id"]] = rule
            for old in d.get("replaces") or []:
                if old in by_id:
                    by_id[old]["enabled"] = False
        data["rules"] = rules
        self._keep_history()
        self.store.save(data)
        with (self.home / "rules_audit.jsonl").open("a", encoding="utf-8") as f:
            f.write(
                json.dumps({"at": now, "by": by, "approved": [d["id"] for d in chosen]}, ensure_ascii=False)
                + "\n"
            )
        return chosen

    def _keep_history(self) -> None:
        path = self.store.path
        if path is not None and path.exists():
            hist = self.home / "rules_history"
            hist.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, hist / f"rules-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.yaml")

    # -- list and preview --------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        return [rule_json(r) for r in self.store.load().rules]

    def preview(self, expression: str, *, as_of: date | None = None) -> dict[str, Any]:
        """How many customers the condition fires for on ``as_of`` (today by default)."""
        day = as_of or datetime.now(UTC).date()
        rule = Rule("preview", "condition", "other", "预览", expression=expression)
        ruleset = self.store.load()
        fired = []
        for summary in self.crm.list_customers():
            snap = self.crm.get_customer(summary.id)
            if snap is not None and KINDS["condition"].evaluate(rule, self.facts(snap, day), ruleset):
                fired.append(summary.id)
        return {"count": len(fired), "customers": fired, "as_of": day.isoformat(),
                "message": f"将对 {len(fired)} 个客户触发"}  # fmt: skip


def rule_json(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id, "kind": r.kind, "enabled": r.enabled, "action_type": r.action_type,
        "description": r.description, "expression": r.expression, "citation": r.citation, "meta": r.meta,
    }  # fmt: skip
