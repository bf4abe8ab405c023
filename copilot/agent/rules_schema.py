"""What a rules document may be before it is parsed or saved: bounded YAML with no aliases, checked
against a schema (an admin replaces it through PUT /api/suggestion-rules; it is served on every GET).

    data = load_yaml(text)        # RulesError: too large, an alias or anchor, too deep, not YAML
    check_schema(data)            # RulesError naming the field: wrong type, too long, too many

Aliases are refused outright: 478 bytes of nested aliases expand to a 42 MB document ("billion
laughs"). The schema bounds every list and string, so what is saved is about as large as what was
sent.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from copilot.agent.ruleset import RulesError

MAX_RULES_BYTES = 64 * 1024
MAX_RULES = 100


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (``*name``) and anchors (``&name``) instead of expanding them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise RulesError(
                f"规则文件不允许使用 YAML 锚点（&）或别名（*）：第 {event.start_mark.line + 1} 行"
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    if len(text.encode("utf-8")) > MAX_RULES_BYTES:
        raise RulesError(f"规则文件过大：最多 {MAX_RULES_BYTES // 1024} KB")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass
    except RecursionError:
        raise RulesError("规则文件嵌套过深") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"规则文件不是合法的 YAML：{exc}") from None


Text = Annotated[str, StringConstraints(max_length=500)]
Word = Annotated[str | int | float, Field(union_mode="left_to_right")]
Scalar = str | int | float | bool | None
Words = Annotated[list[Word], Field(max_length=100)]
ParamValue = (
    Scalar
    | Annotated[list[Scalar], Field(max_length=100)]
    | Annotated[dict[str, Scalar], Field(max_length=50)]
)


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(max_length=64)]
    kind: Annotated[str, StringConstraints(max_length=64)] = ""  # "condition" when an expression is given
    expression: Annotated[str, StringConstraints(max_length=2000)] = ""  # a manager's condition
    citation: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], Scalar], Field(max_length=20)
    ] = {}
    meta: Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Scalar], Field(max_length=20)] = {}
    team_id: Annotated[str, StringConstraints(max_length=64)] | None = None  # None: the whole company
    enabled: bool = True
    description: Text = ""
    action_type: Annotated[str, StringConstraints(max_length=64)]
    reason_query: Text = ""
    reason_keywords: Words = []
    params: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], ParamValue], Field(max_length=30)
    ] = {}


class _RulesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    objection_keywords: Annotated[
        dict[Annotated[str, StringConstraints(max_length=20)], Words], Field(max_length=30)
    ] = {}
    discount_keywords: Words = []
    rules: Annotated[list[_Rule], Field(max_length=MAX_RULES)]


def check_schema(data: Any) -> None:
    """RulesError (Chinese, naming up to three fields) unless ``data`` fits the rules schema."""
    if not isinstance(data, dict):
        raise RulesError("规则文件必须是对象，且包含 rules 列表")
    try:
        _RulesDocument.model_validate(data)
    except ValidationError as exc:
        problems = dict.fromkeys(f"{_where(e['loc'])} {_reason(e)}" for e in exc.errors())
        where = "；".join(list(problems)[:3])
        raise RulesError(f"规则文件格式不符合要求：{where}") from None


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _where(loc: tuple[Any, ...]) -> str:
    """``rules.0.params.a`` (pydantic also names the union member it tried: left out)."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p)))


def _reason(error: dict[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "string_too_long":
        return f"过长（最多 {ctx.get('max_length')} 字）"
    if kind == "too_long":
        return f"过多（最多 {ctx.get('max_length')} 项）"
    if kind == "extra_forbidden":
        return "是不支持的字段"
    if kind == "missing":
        return "缺少必填字段"
    return "类型或取值不合法"
