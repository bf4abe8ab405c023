"""Manager-configurable follow-up rules: parsing, validation and the rules file.

The rules live in YAML (``copilot/agent/rules.yaml`` by default, ``$COPILOT_HOME/rules.yaml`` once
a manager edits them): each names a ``kind`` (one module in ``copilot.agent.triggers``), its
parameters, the action it suggests and a Chinese description; ``team_id`` (optional) scopes a rule to
one team's customers, absent it fires for the whole company. This module parses, validates and
stores them; ``copilot.agent.triggers.evaluate`` returns the rules that fire for a customer.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from copilot.agent.conditions import check_condition
from copilot.agent.rules_schema import check_schema, load_yaml
from copilot.agent.ruleset import Rule, RulesError, RuleSet
from copilot.agent.triggers import KINDS
from copilot.domain import ACTION_TYPES

RULE_KINDS = tuple(KINDS)


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise RulesError(f"{where} 必须是字符串列表")
    return tuple(str(v) for v in value)


def parse_rules(data: Any) -> RuleSet:
    """Validate a rules document (parsed YAML/JSON); RulesError names the field to fix."""
    check_schema(data)  # types and sizes first (rules_schema.py)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError("规则文件必须是对象，且包含 rules 列表")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["rules"], start=1):
        if not isinstance(raw, dict):
            raise RulesError(f"第 {i} 条规则必须是对象")
        rid = str(raw.get("id") or "").strip()
        expression = str(raw.get("expression") or "").strip()
        kind = str(raw.get("kind") or ("condition" if expression else "")).strip()
        action = str(raw.get("action_type") or "").strip()
        if not rid or rid in seen:
            raise RulesError(f"第 {i} 条规则缺少 id 或 id 重复")
        if kind not in RULE_KINDS:
            raise RulesError(f"规则 {rid} 的 kind={kind!r} 不支持；可选：{', '.join(RULE_KINDS)}")
        if action not in ACTION_TYPES:
            raise RulesError(f"规则 {rid} 的 action_type={action!r} 不支持；可选：{', '.join(ACTION_TYPES)}")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise RulesError(f"规则 {rid} 的 params 必须是对象")
        if kind == "condition" and not expression:
            raise RulesError(f"规则 {rid} 是条件规则（kind: condition），须填写 expression（条件表达式）")
        if expression:
            problem = check_condition(expression)
            if problem:
                raise RulesError(f"规则 {rid} 的条件有误：{problem}")
        citation = raw.get("citation") or {}
        meta = raw.get("meta") or {}
        if not isinstance(citation, dict) or not isinstance(meta, dict):
            raise RulesError(f"规则 {rid} 的 citation / meta 必须是对象")
        seen.add(rid)
        rules.append(
            Rule(
                id=rid,
                kind=kind,
                action_type=action,
                description=str(raw.get("description") or rid),
                enabled=bool(raw.get("enabled", True)),
                reason_query=str(raw.get("reason_query") or ""),
                reason_keywords=_strs(raw.get("reason_keywords"), f"规则 {rid} 的 reason_keywords"),
                params=dict(params),
                expression=expression,
                citation={str(k): str(v) for k, v in citation.items()},
                meta=dict(meta),
                team_id=str(raw.get("team_id") or "").strip() or None,  # check_schema: a string
            )
        )
    objections = data.get("objection_keywords") or {}
    if not isinstance(objections, dict):
        raise RulesError("objection_keywords 必须是“异议类型: [关键词]”的对象")
    return RuleSet(
        rules=tuple(rules),
        objection_keywords={str(k): _strs(v, f"objection_keywords.{k}") for k, v in objections.items()},
        discount_keywords=_strs(data.get("discount_keywords"), "discount_keywords"),
    )


def default_rules_text() -> str:
    return resources.files("copilot.agent").joinpath("rules.yaml").read_text(encoding="utf-8")


def load_rules_text(text: str) -> RuleSet:
    """Parse rules YAML: bounded, no aliases or anchors, schema-checked (rules_schema.py)."""
    return parse_rules(load_yaml(text))


class RuleStore:
    """Rules from ``path`` when it exists, else the packaged defaults; ``save`` validates first."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._cache: tuple[float, RuleSet] | None = None

    def load(self) -> RuleSet:
        if self.path is None or not self.path.exists():
            if self._cache is None or self._cache[0] != -1.0:
                self._cache = (-1.0, load_rules_text(default_rules_text()))
            return self._cache[1]
        mtime = self.path.stat().st_mtime
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, load_rules_text(self.path.read_text(encoding="utf-8")))
        return self._cache[1]

    def text(self) -> str:
        if self.path is not None and self.path.exists():
            return self.path.read_text(encoding="utf-8")
        return default_rules_text()

    def save(self, data: dict[str, Any] | str) -> RuleSet:
        if self.path is None:
            raise RulesError("未配置规则文件位置，无法保存")
        if isinstance(data, str):
            ruleset, text = load_rules_text(data), data
        else:
            ruleset = parse_rules(data)
            text = yaml.safe_dump(ruleset.to_json(), allow_unicode=True, sort_keys=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path)
        self._cache = None
        return ruleset
