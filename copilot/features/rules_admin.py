"""Managers' rules: drafts read from the company's policy/rules documents, approval (nothing fires before),
the list, and a preview of how many customers a condition fires for today ("将对 7 个客户触发").

Drafts wait in ``$COPILOT_HOME/rule_drafts.json``; approving writes ``$COPILOT_HOME/rules.yaml`` through
``RuleStore.save`` (validated), keeps the previous file in ``rules_history/`` and appends who approved what
to ``rules_audit.jsonl``. A manager may also reject a draft, and write or edit a condition rule from an
expression (``save_rule``: validated before anything is written; the rule's ``meta.version`` goes up by one
on every change). Every change is one audit line ``{"at","by","op","rules",…}``; ``history(rule_id)`` is
that rule's lines. The CLI (`copilot rules …`) and the HTTP API (`/api/rules…`) both call this class.

Rules are one file, each rule scoped: without ``team_id`` it is company-wide (the bundled rules and every
file written before scopes existed), with one it fires only for customers whose owner is in that team
(``copilot.agent.triggers.fires``). Who may do what, with ``user`` None for the CLI (the local operator,
an admin):

- ``may_see``: an admin everything; a manager (or rep) the company-wide rules and their own team's; the
  same holds for audit lines (each records the ``team_id`` of the rules it touched) and a rule's history.
- ``target_team``: what a manager creates or approves becomes their team's rule; an admin's is
  company-wide unless a ``team_id`` is given.
- ``may_change``: an admin changes anything; a manager only their team's rules — editing a company-wide
  rule or another team's, or approving a draft that would change one (a preset it cites, a built-in
  rule it replaces), is ``AppError("forbidden")`` (403) before anything is written. An edit keeps the
  rule's scope.

What a manager sees of a preview is scoped too: ``preview(…, owners=)`` counts and names only the
customers of those owners (the manager's team; ``None`` for an admin) and ``preview(…, team_id=)`` fires
only for that team's customers, as the rule would.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from connectors.crm.base import CRM
from copilot.agent.conditions import check_condition
from copilot.agent.rule_drafts import RuleDraft, draft_rules
from copilot.agent.rule_drafts_llm import llm_rule_drafts, merge_drafts
from copilot.agent.rules import RuleStore, parse_rules
from copilot.agent.ruleset import Rule, RulesError
from copilot.agent.triggers import fires
from copilot.domain import ACTION_TYPES, User
from copilot.errors import AppError

if TYPE_CHECKING:
    from copilot.agent.facts import Facts
    from copilot.infra.llm.chat_model import ChatModel
    from knowledge_base.base import KnowledgeBase

RULE_DOC_TYPES = ("rules", "policy")
COMPANY = "全公司"  # the scope of a rule without ``team_id``


def may_see(user: User | None, team_id: str | None) -> bool:
    """A rule (or audit line) of ``team_id`` is visible to the CLI operator (None) and an admin always, to
    anyone else when it is company-wide or of their own team."""
    return user is None or user.role == "admin" or team_id is None or team_id == user.team_id


def scope_label(team_id: str | None, team_names: dict[str, str]) -> str:
    """「全公司」 or the team's name."""
    return COMPANY if team_id is None else team_names.get(team_id, team_id)


def may_change(user: User | None, team_id: str | None) -> bool:
    """The CLI operator and an admin may change any rule; a manager only their own team's."""
    if user is None or user.role == "admin":
        return True
    return user.role == "manager" and team_id is not None and team_id == user.team_id


@dataclass
class RulesAdmin:
    store: RuleStore
    home: Path
    kb: Callable[[], KnowledgeBase | None]
    crm: CRM
    facts: Callable[[Any, date], Facts]  # (snapshot, as_of) -> Facts (the suggester's)
    llm: Callable[[], ChatModel | None] = lambda: None  # drafts by structured output when configured
    teams: Callable[[], dict[str, str]] = dict  # {team id: name}: scopes are checked and shown by name

    # -- scope -------------------------------------------------------------------------------------
    def target_team(self, user: User | None, team_id: str | None = None) -> str | None:
        """The team a rule that ``user`` creates or approves belongs to: a manager's own team; for an admin
        or the CLI operator (None), ``team_id``, company-wide by default."""
        if user is not None and user.role != "admin":
            if user.role != "manager" or not user.team_id:
                raise AppError("forbidden", "只有归属某个团队的经理或管理员可以新建、批准规则。")
            if team_id not in (None, user.team_id):
                raise AppError("forbidden", "经理只能为本团队新建或批准规则。")
            return user.team_id
        if team_id is not None and team_id not in self.teams():
            raise RulesError(f"找不到团队：{team_id[:64]}")
        return team_id

    def _check_change(self, user: User | None, rule: dict[str, Any], team: str | None) -> None:
        """403 unless ``user`` may change ``rule``; RulesError when the change would move it to ``team``."""
        current = rule.get("team_id") or None
        if not may_change(user, current):
            whose = "全公司规则只能由管理员修改" if current is None else "这是其他团队的规则"
            raise AppError("forbidden", f"无权修改规则 {rule.get('id')}：{whose}，经理只能修改本团队的规则。")
        if current != team:
            raise RulesError(
                f"规则 {rule.get('id')} 的适用范围是{scope_label(current, names := self.teams())}，"
                f"不能改为{scope_label(team, names)}；如需调整，请新建规则并停用旧规则"
            )

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
                text = kb.document_text(doc.path) or ""
                offline = draft_rules(doc.path, text)
                llm = self.llm()
                drafts += merge_drafts(offline, llm_rule_drafts(llm, doc.path, text)) if llm else offline
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
    def approve(
        self, ids: Iterable[str], *, all_: bool = False, by: str = "cli", user: User | None = None,
        team_id: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Approved drafts become rules of ``target_team(user, team_id)``; a draft that would change a rule
        of another scope (a preset it cites, a rule it replaces) is refused before anything is written."""
        team = self.target_team(user, team_id)
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
        prior = {rid: int((r.get("meta") or {}).get("version") or 0) for rid, r in by_id.items()}
        for d in chosen:
            touched = [d["preset"]] if d.get("preset") in by_id else [d["id"], *(d.get("replaces") or [])]
            for rid in touched:
                if rid in by_id:
                    self._check_change(user, by_id[rid], team)
        for d in chosen:
            citation = dict(d.get("citation") or {})
            preset = by_id.get(d.get("preset"))
            if preset is not None:
                preset.update(enabled=True, citation=citation, meta={**meta, "draft_id": d["id"]})
                continue
            rule = {"id": d["id"], "kind": "condition", "enabled": True, "description": d["description"],
                    "action_type": d["action_type"], "expression": d["expression"], "citation": citation,
                    "params": {"due_in_days": 3}, "meta": {**meta, "draft_id": d["id"]},
                    **({"team_id": team} if team else {})}  # fmt: skip
            if d["id"] in by_id:
                by_id[d["id"]].update(rule)
            else:
                rules.append(rule)
                by_id[d["id"]] = rule
            for old in d.get("replaces") or []:
                if old in by_id:
                    by_id[old]["enabled"] = False
        for d in chosen:
            rid = d.get("preset") if d.get("preset") in by_id else d["id"]
            if rid in by_id:
                by_id[rid]["meta"]["version"] = prior.get(rid, 0) + 1
        data["rules"] = rules
        self._keep_history()
        self.store.save(data)
        self._drop_pending({d["id"] for d in chosen})
        approved = [d["id"] for d in chosen]
        self._audit({"at": now, "by": by, "op": "approve", "approved": approved, "rules": [
            d.get("preset") or d["id"] for d in chosen], "expressions": [d["expression"] for d in chosen],
            "team_id": team})  # fmt: skip
        return chosen

    def reject(self, ids: Iterable[str], *, by: str = "cli", reason: str = "") -> list[dict[str, Any]]:
        """Drop drafts without approving them; the audit keeps who rejected what."""
        wanted = set(ids)
        drafts = self.pending()
        chosen = [d for d in drafts if d["id"] in wanted]
        missing = wanted - {d["id"] for d in chosen}
        if missing or not wanted:
            raise RulesError(f"找不到规则草稿：{'、'.join(sorted(missing)) or '（未指定）'}")
        self._drop_pending(wanted)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._audit({"at": now, "by": by, "op": "reject", "rejected": sorted(wanted), "rules": sorted(wanted),
                     "reason": reason[:500]})  # fmt: skip
        return chosen

    def _drop_pending(self, ids: set[str]) -> None:
        if self.drafts_path.exists():
            left = [d for d in self.pending() if d["id"] not in ids]
            self.drafts_path.write_text(
                json.dumps({"drafts": left}, ensure_ascii=False, indent=1), encoding="utf-8"
            )

    # -- rules written by a manager ----------------------------------------------------------------
    def save_rule(
        self,
        *,
        rule_id: str | None,
        expression: str,
        action_type: str,
        description: str,
        enabled: bool = True,
        due_in_days: int = 3,
        by: str = "cli",
        user: User | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:
        """Create (``rule_id`` None) or edit a condition rule; RulesError (Chinese) before any write. A new
        rule belongs to ``target_team(user, team_id)``; an edit keeps the rule's scope and is 403 unless
        ``user`` may change it (``may_change``)."""
        data = yaml.safe_load(self.store.text()) or {}
        rules: list[dict[str, Any]] = list(data.get("rules") or [])
        by_id = {r.get("id"): r for r in rules}
        rule: dict[str, Any] | None = by_id.get(rule_id) if rule_id is not None else None
        if rule_id is None:
            team = self.target_team(user, team_id)  # who may write where comes before what is written
        elif rule is None:
            raise RulesError(f"找不到规则：{rule_id}")
        else:
            team = rule.get("team_id") or None
            self._check_change(user, rule, team if team_id is None else team_id)
            if rule.get("kind") not in (None, "condition"):
                raise RulesError(
                    f"规则 {rule_id} 是内置的 {rule.get('kind')} 规则，只能启用或停用，不能改写条件"
                )
        expression = (expression or "").strip()
        description = (description or "").strip()
        if not expression:
            raise RulesError("请填写条件表达式，如 opp.amount > 1000000 and not opp.se_assigned")
        problem = check_condition(expression)
        if problem:
            raise RulesError(problem)
        if action_type not in ACTION_TYPES:
            raise RulesError(f"动作类型 {action_type!r} 不支持；可选：{', '.join(ACTION_TYPES)}")
        if not description:
            raise RulesError("请填写规则说明（建议中会显示给销售）")
        if any(ord(ch) < 32 for ch in description + expression):
            raise RulesError("规则说明和条件中不能包含控制字符（如 \\u0000、换行）")
        if not 0 <= due_in_days <= 365:
            raise RulesError("截止天数应在 0–365 之间")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        before = None
        if rule is None:
            rule_id = "mr_" + secrets.token_hex(5)
            rule = {"id": rule_id, "kind": "condition", "params": {}, "meta": {"origin": "manager"},
                    **({"team_id": team} if team else {})}  # fmt: skip
            rules.append(rule)
        else:
            before = rule.get("expression")
        meta = dict(rule.get("meta") or {})
        meta.update(edited_by=by, edited_at=now, version=int(meta.get("version") or 0) + 1)
        params = dict(rule.get("params") or {})
        params["due_in_days"] = due_in_days
        rule.update(kind="condition", expression=expression, action_type=action_type, description=description,
                    enabled=bool(enabled), params=params, meta=meta)  # fmt: skip
        data["rules"] = rules
        parse_rules(data)  # the whole file must still be valid before the old one is kept aside
        self._keep_history()
        self.store.save(data)
        self._audit({"at": now, "by": by, "op": "create" if before is None else "edit", "rules": [rule_id],
                     "before": before, "after": expression, "version": meta["version"], "team_id": team})  # fmt: skip
        return rule_json(next(r for r in self.store.load().rules if r.id == rule_id), self.teams())

    # -- versions and audit ------------------------------------------------------------------------
    def _audit(self, entry: dict[str, Any]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "rules_audit.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def audit(self, rule_id: str | None = None, *, user: User | None = None) -> list[dict[str, Any]]:
        """Audit lines, newest first; with ``rule_id``, only the changes to that rule (its version history);
        with ``user``, only the lines about rules they may see (a line's ``team_id``; lines written before
        rules had scopes are company-wide)."""
        path = self.home / "rules_audit.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            entry.setdefault("op", "approve" if entry.get("approved") else "change")
            entry.setdefault("rules", entry.get("approved") or [])
            if not may_see(user, entry.get("team_id")):
                continue
            if rule_id is None or rule_id in entry["rules"] or rule_id in (entry.get("approved") or []):
                out.append(entry)
        return out[::-1]

    def versions(self) -> list[dict[str, Any]]:
        """The rules file's earlier versions kept in ``rules_history/`` (newest first) and the current one."""
        hist = self.home / "rules_history"
        files = sorted(hist.glob("rules-*.yaml")) if hist.exists() else []
        out = [{"version": i + 1, "file": f.name, "kept_at": f.name[6:-5]} for i, f in enumerate(files)]
        out.append({"version": len(files) + 1, "file": "rules.yaml", "current": True})
        return out[::-1]

    def _keep_history(self) -> None:
        path = self.store.path
        if path is not None and path.exists():
            hist = self.home / "rules_history"
            hist.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, hist / f"rules-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.yaml")

    # -- list and preview --------------------------------------------------------------------------
    def list(self, user: User | None = None) -> list[dict[str, Any]]:
        """The rules ``user`` may see (everything for the CLI operator), each with its scope."""
        names = self.teams()
        return [rule_json(r, names) for r in self.store.load().rules if may_see(user, r.team_id)]

    def preview(
        self, expression: str, *, as_of: date | None = None, owners: set[str] | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """How many customers the condition fires for on ``as_of`` (today by default); with ``owners``
        (the manager's team), only their customers are counted and named; with ``team_id`` (a team's
        rule), only that team's customers fire."""
        day = as_of or datetime.now(UTC).date()
        rule = Rule("preview", "condition", "other", "预览", expression=expression, team_id=team_id)
        ruleset = self.store.load()
        fired, names = [], []
        for summary in self.crm.list_customers(owner_ids=owners):
            snap = self.crm.get_customer(summary.id)
            if snap is not None and fires(rule, self.facts(snap, day), ruleset):
                fired.append(summary.id)
                names.append(summary.name)
        return {"count": len(fired), "customers": fired, "names": names, "as_of": day.isoformat(),
                "message": f"将对 {len(fired)} 个客户触发"}  # fmt: skip


def rule_json(r: Rule, team_names: dict[str, str]) -> dict[str, Any]:
    """A rule for the API and the CLI; ``team_id`` None and ``scope`` 「全公司」 for a company-wide rule."""
    return {
        "id": r.id, "kind": r.kind, "enabled": r.enabled, "action_type": r.action_type,
        "description": r.description, "expression": r.expression, "citation": r.citation, "meta": r.meta,
        "team_id": r.team_id, "scope": scope_label(r.team_id, team_names),
    }  # fmt: skip
