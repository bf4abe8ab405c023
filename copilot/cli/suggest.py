"""`copilot suggest` and `copilot eval suggest` (DESIGN §5.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from copilot.cli.common import emit_json, fail, server_report, services

JsonOpt = Annotated[bool, typer.Option("--json", help="输出一个 JSON 文档")]


def _suggester():
    return services().suggester


def suggest(
    customer: Annotated[str, typer.Option("--customer", help="客户 ID")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="以该日期为“今天”（YYYY-MM-DD），忽略之后的记录")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """为客户生成下一步行动建议（每条建议附可核验的依据；有同一数据目录的服务在运行时由它回答）。"""
    data = server_report("suggest", {"customer": customer, "as_of": as_of})
    if data is None:
        from copilot.errors import AppError
        from copilot.features.cli_reports import suggest_report

        try:
            data = suggest_report(_suggester(), customer, as_of)
        except AppError as exc:
            fail(exc.detail)
    if as_json:
        emit_json(data)
        return
    if data.get("note"):
        typer.secho(data["note"], fg=typer.colors.YELLOW)
    if not data["suggestions"]:
        typer.echo(f"{customer}：截至 {data['as_of']} 暂无需要跟进的事项。")
    for i, s in enumerate(data["suggestions"], start=1):
        typer.echo(f"{i}. [{s['action_type']}] {s['title']}（置信度 {s['confidence']:.2f}）")
        typer.echo(f"   {s['rationale']}")
        for c in s["citations"]:
            typer.echo(f"   —— {c['label']}：「{c['quote']}」")


def eval_suggest(
    cases: Annotated[
        Path, typer.Option("--cases", exists=True, dir_okay=False, help="用例 JSONL（DESIGN §5.3）")
    ],
    as_json: JsonOpt = False,
) -> None:
    """下一步建议评测：期望动作召回率、禁止动作命中数、引用有效率、p95 延迟。"""
    from copilot.agent.citations import verify
    from copilot.domain import Citation
    from copilot.errors import AppError
    from copilot.features.suggestions.suggester import parse_as_of
    from evals.suggest import run_suggest

    rows = []
    for n, line in enumerate(cases.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                fail(f"{cases} 第 {n} 行不是合法 JSON")
    sg = _suggester()
    resolvers: dict[str, Any] = {}

    def run(customer_id: str, as_of: str) -> list[dict]:
        try:
            return [
                s.to_json() for s in sg.plan_for_owner(customer_id, parse_as_of(as_of or None)).suggestions
            ]
        except AppError:
            return []

    def check(c: dict, case: dict) -> bool:
        day = parse_as_of(case.get("as_of") or None)
        if day.isoformat() not in resolvers:
            resolvers[day.isoformat()] = sg.resolver(day)
        cit = Citation(
            c["kind"], c["ref"], c.get("locator", ""), c.get("source", ""), c["quote"], c.get("label", "")
        )
        return verify(cit, resolvers[day.isoformat()])

    if rows:  # warm the models and caches once, outside the timed runs
        run(str(rows[0]["customer_id"]), str(rows[0].get("as_of") or ""))
    result = run_suggest(rows, suggest=run, verify=check)
    if as_json:
        emit_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")
