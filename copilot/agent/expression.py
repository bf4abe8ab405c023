"""A small, safe expression language for rule conditions that managers write without code.

    expr = parse("opp.amount > 1000000 and not opp.se_assigned", CATALOGUE)
    evaluate(expr, {"opp": {"amount": 1680000, "se_assigned": ""}})  # True

The syntax is Python's expression subset: ``and or not``, comparisons (``> >= < <= == != in``, chained),
``+ - * /`` on numbers (``+`` also joins text to text, a list to a list; text is never repeated), numbers,
strings, lists, dotted names (``opp.amount``) and calls of whitelisted functions
(``months_declining(15)``). Managers may also write ``且 / 或 / 非``, ``≥ ≤ ≠`` and Chinese quotes.
The text is parsed with ``ast`` and every node is checked against a whitelist; nothing is ever passed to
``eval``/``exec``, attributes are looked up in plain dicts, and only catalogue names exist. Errors are
``ExpressionError`` with a Chinese message that says what to fix.

Missing values (``None``: no visit yet, no amount) make a comparison false, so a rule never fires on data
the CRM does not have; arithmetic with ``None`` gives ``None``.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LENGTH = 500
MAX_NODES = 200


class ExpressionError(ValueError):
    """The condition cannot be used; the message (Chinese) says what to fix."""


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What an expression may name: top-level variables, scoped records (``opp.*``) and functions.

    A scope accepts any field name not in its list when ``open_scopes`` holds it (custom CRM fields)."""

    variables: Mapping[str, str]  # name -> Chinese description
    scopes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # scope -> field -> description
    functions: Mapping[str, str] = field(default_factory=dict)  # name -> Chinese description
    open_scopes: frozenset[str] = frozenset()

    def names(self) -> list[str]:
        return [*self.variables, *(f"{s}.{f}" for s, fs in self.scopes.items() for f in fs), *self.functions]


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    tree: ast.Expression
    variables: frozenset[str]  # top-level names and scopes used
    fields: frozenset[str]  # "scope.field" used


_TRANSLATE = [
    (re.compile(r"≥|＞＝|>＝"), ">="),
    (re.compile(r"≤|＜＝|<＝"), "<="),
    (re.compile(r"≠|！＝"), "!="),
    (re.compile(r"＝＝"), "=="),
    (re.compile(r"＞"), ">"),
    (re.compile(r"＜"), "<"),
    (re.compile(r"（"), "("),
    (re.compile(r"）"), ")"),
    (re.compile(r"，"), ","),
    (re.compile(r"\s*(?:并且|而且|且)\s*"), " and "),
    (re.compile(r"\s*(?:或者|或)\s*"), " or "),
    (re.compile(r"(?:(?<=^)|(?<=[\s(]))(?:没有|非)\s*"), "not "),
]


def normalise(text: str) -> str:
    """Chinese operators and punctuation → the Python subset (string literals are left alone)."""
    text = re.sub(r"[“”「」]", '"', text.strip()).replace("‘", "'").replace("’", "'")
    parts = re.split(r"(\"[^\"]*\"|'[^']*')", text)
    for i in range(0, len(parts), 2):
        for pattern, repl in _TRANSLATE:
            parts[i] = pattern.sub(repl, parts[i])
    return "".join(parts).strip()


_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is not None and a not in b,
}


def _number(value: Any) -> float | int:
    """A number operand: text and lists are refused (``"a" * 10000000000`` would allocate the memory)."""
    if not isinstance(value, int | float):
        raise TypeError("arithmetic on numbers only")
    return value


def _add(a: Any, b: Any) -> Any:
    """Numbers add; text joins text and a list joins a list (sizes add, they never multiply)."""
    if isinstance(a, str) and isinstance(b, str) or isinstance(a, list) and isinstance(b, list):
        return a + b
    return _number(a) + _number(b)


_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: lambda a, b: _number(a) - _number(b),
    ast.Mult: lambda a, b: _number(a) * _number(b),
    ast.Div: lambda a, b: _number(a) / _number(b),
}
_OP_ZH = {ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.Is: "is"}


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    return f"；是否想写：{'、'.join(close)}" if close else f"；可用：{'、'.join(options[:40])}"


def parse(text: str, catalogue: Catalogue) -> Expression:
    """Parse and validate ``text``; ExpressionError (Chinese) when it is not a valid condition."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("条件表达式不能为空")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"条件表达式过长（{len(text)} 字符，上限 {MAX_LENGTH}）")
    source = normalise(text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1) - 1
        near = source[max(0, col - 6) : col + 6]
        raise ExpressionError(f"条件表达式语法错误：第 {col + 1} 个字符附近「{near}」") from None
    variables: set[str] = set()
    fields: set[str] = set()
    for count, node in enumerate(ast.walk(tree), start=1):
        if count > MAX_NODES:
            raise ExpressionError("条件表达式过于复杂，请拆成多条规则")
        _check_node(node, catalogue, variables, fields)
    return Expression(text.strip(), tree, frozenset(variables), frozenset(fields))


def _check_node(node: ast.AST, cat: Catalogue, variables: set[str], fields: set[str]) -> None:
    allowed = (
        ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare,
        ast.Gt, ast.GtE, ast.Lt, ast.LtE, ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.BinOp, ast.Add, ast.Sub,
        ast.Mult, ast.Div, ast.Name, ast.Load, ast.Attribute, ast.Constant, ast.Call, ast.List, ast.Tuple,
    )  # fmt: skip
    if not isinstance(node, allowed):
        op = _OP_ZH.get(type(node))
        what = f"运算符「{op}」" if op else f"语法「{type(node).__name__}」"
        raise ExpressionError(
            f"条件表达式不支持{what}；只能使用 and/or/not、比较、加减乘除、数字、文字和字段"
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str | bool | type(None)):
        raise ExpressionError("条件表达式只能包含数字、文字、true/false")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in cat.functions:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"不支持的函数「{name}」" + _suggest(name, list(cat.functions)))
        variables.add(node.func.id)
        if node.keywords or len(node.args) > 3:
            raise ExpressionError(f"函数 {node.func.id} 只接受最多 3 个按位置传入的参数")
    elif isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name) or node.value.id not in cat.scopes:
            raise ExpressionError(
                f"不支持的字段「{ast.unparse(node)}」；带点的字段只能以 {'、'.join(cat.scopes)} 开头"
            )
        scope = node.value.id
        if node.attr.startswith("_") or (node.attr not in cat.scopes[scope] and scope not in cat.open_scopes):
            raise ExpressionError(
                f"未知字段「{scope}.{node.attr}」" + _suggest(node.attr, list(cat.scopes[scope]))
            )
        fields.add(f"{scope}.{node.attr}")
        variables.add(scope)
    elif isinstance(node, ast.Name):
        if node.id in cat.functions:
            return  # checked as the call's function
        if node.id in cat.scopes:
            variables.add(node.id)
            return
        if node.id in ("true", "false", "True", "False", "none", "None"):
            return
        if node.id not in cat.variables:
            raise ExpressionError(f"未知字段「{node.id}」" + _suggest(node.id, cat.names()))
        variables.add(node.id)


_LITERALS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}


def evaluate(
    expr: Expression, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] | None = None
) -> Any:
    """The value of ``expr`` with variables from ``env`` (scopes are dicts); never raises on data."""
    return _eval(expr.tree.body, env, functions or {})


def truthy(
    expr: Expression, env: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]] | None = None
) -> bool:
    try:
        return bool(evaluate(expr, env, functions))
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return False  # e.g. comparing a number with text: the rule does not fire


def _eval(node: ast.AST, env: Mapping[str, Any], fns: Mapping[str, Callable[..., Any]]) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            value: Any = True
            for v in node.values:
                value = _eval(v, env, fns)
                if not value:
                    return value
            return value
        value = False
        for v in node.values:
            value = _eval(v, env, fns)
            if value:
                return value
        return value
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, env, fns)
        if isinstance(node.op, ast.Not):
            return not operand
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, fns)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env, fns)
            if isinstance(op, ast.In | ast.NotIn):
                if right is None or not _CMP[type(op)](left, right):
                    return False
            elif left is None or right is None:
                if not isinstance(op, ast.Eq | ast.NotEq) or not _CMP[type(op)](left, right):
                    return False
            elif not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env, fns), _eval(node.right, env, fns)
        return None if a is None or b is None else _BIN[type(node.op)](a, b)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _LITERALS and node.id not in env:
            return _LITERALS[node.id]
        return env.get(node.id)
    if isinstance(node, ast.Attribute):
        scope = env.get(node.value.id) if isinstance(node.value, ast.Name) else None
        return scope.get(node.attr) if isinstance(scope, Mapping) else None
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, env, fns) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        fn = fns.get(node.func.id)
        return fn(*(_eval(a, env, fns) for a in node.args)) if fn is not None else None
    raise ExpressionError(f"条件表达式不支持语法「{type(node).__name__}」")  # unreachable after parse()
