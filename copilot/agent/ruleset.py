"""Manager-configurable follow-up rules as data: a ``Rule`` (kind, parameters, the action it suggests),
the ``RuleSet`` and a ``Trigger`` (a rule that fired for a customer). Parsing and storage: ``rules``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RulesError(ValueError):
    """The rules file is invalid; the message (Chinese) says what to fix."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    action_type: str
    description: str
    enabled: bool = True
    reason_query: str = ""
    reason_keywords: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    expression: str = ""  # kind "condition": the manager's condition (copilot.agent.expression)
    citation: dict[str, str] = field(
        default_factory=dict
    )  # {"source": KB path, "quote": the rule's sentence}
    meta: dict[str, Any] = field(default_factory=dict)  # audit: origin, draft id, approved_by, approved_at
    team_id: str | None = None  # the team whose customers it fires for; None: the whole company

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def applies_to(self, team_id: str | None) -> bool:
        """Whether the rule may fire for a customer whose owner is in ``team_id``."""
        return self.team_id is None or self.team_id == team_id


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    objection_keywords: dict[str, tuple[str, ...]]
    discount_keywords: tuple[str, ...]

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "objection_keywords": {k: list(v) for k, v in self.objection_keywords.items()},
            "discount_keywords": list(self.discount_keywords),
            "rules": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "enabled": r.enabled,
                    "description": r.description,
                    "action_type": r.action_type,
                    "reason_query": r.reason_query,
                    "reason_keywords": list(r.reason_keywords),
                    "params": r.params,
                    **({"team_id": r.team_id} if r.team_id else {}),
                    **({"expression": r.expression} if r.expression else {}),
                    **({"citation": r.citation} if r.citation else {}),
                    **({"meta": r.meta} if r.meta else {}),
                }
                for r in self.rules
            ],
        }


@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that fired for this customer; ``key`` tells firings of one rule apart (opp id, competitor…)."""

    rule: Rule
    key: str
    data: dict[str, Any] = field(default_factory=dict)
