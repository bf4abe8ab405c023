"""`copilot rules draft|approve|list|preview` (DESIGN §5.2): rules drafted from the company's own policy
documents, approved by a manager before they fire. The CLI is the local operator (an admin): what it
approves is company-wide unless ``--team`` names a team."""

from __future__ import annotations

from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, services

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="输出一个 JSON 文档")]
TeamOpt = Annotated[str | None, typer.Option("--team", help="团队编号：只对该团队的客户生效（默认全公司）")]


@app.command("draft")
def draft(as_json: JsonOpt = False) -> None:
    """从知识库中的规则/制度文档起草跟进规则（经理批准后才生效）。"""
    drafts = services().rules_admin.draft()
    if as_json:
        emit_json({"drafts": drafts})
        return
    if not drafts:
        typer.echo("知识库中的规则/制度文档里没有识别到可起草的规则。")
    for d in drafts:
        typer.echo(f"{d['id']}  [{d['action_type']}]  {d['expression']}  （{d['preview']['message']}）")
        typer.echo(f"    依据《{d['citation']['source']}》：「{d['citation']['quote']}」")
    if drafts:
        typer.echo("批准：copilot rules approve 草稿ID…  或  copilot rules approve --all")


@app.command("approve")
def approve(
    ids: Annotated[list[str] | None, typer.Argument(help="草稿 ID")] = None,
    all_: Annotated[bool, typer.Option("--all", help="批准全部草稿")] = False,
    by: Annotated[str, typer.Option("--by", help="批准人（记入审计日志）")] = "cli",
    team: TeamOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """批准规则草稿：批准后按该规则生成建议（默认全公司；--team 只对该团队的客户生效）。"""
    from copilot.agent.ruleset import RulesError

    if not ids and not all_:
        fail("请给出草稿 ID，或使用 --all")
    try:
        done = services().rules_admin.approve(ids or [], all_=all_, by=by, team_id=team)
    except RulesError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"approved": [d["id"] for d in done]})
        return
    for d in done:
        typer.echo(f"已批准 {d['id']}：{d['description']}")


@app.command("reject")
def reject(
    ids: Annotated[list[str], typer.Argument(help="草稿 ID")],
    by: Annotated[str, typer.Option("--by", help="驳回人（记入审计日志）")] = "cli",
    reason: Annotated[str, typer.Option("--reason", help="驳回原因")] = "",
    as_json: JsonOpt = False,
) -> None:
    """驳回规则草稿（不生效，记入审计日志）。"""
    from copilot.agent.ruleset import RulesError

    try:
        done = services().rules_admin.reject(ids, by=by, reason=reason)
    except RulesError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"rejected": [d["id"] for d in done]})
        return
    for d in done:
        typer.echo(f"已驳回 {d['id']}：{d['description']}")


@app.command("list")
def list_rules(as_json: JsonOpt = False) -> None:
    """列出当前生效与停用的规则及其适用范围（全公司或某个团队）。"""
    rules = services().rules_admin.list()
    if as_json:
        emit_json({"rules": rules})
        return
    for r in rules:
        mark = "启用" if r["enabled"] else "停用"
        cond = f"  条件：{r['expression']}" if r["expression"] else ""
        typer.echo(
            f"[{mark}] [{r['scope']}] {r['id']}（{r['kind']} → {r['action_type']}）{r['description']}{cond}"
        )


@app.command("preview")
def preview(
    expression: Annotated[
        str, typer.Argument(help='条件表达式，如 "opp.amount > 1000000 and not opp.se_assigned"')
    ],
    as_of: Annotated[str | None, typer.Option("--as-of", help="以该日期为今天（YYYY-MM-DD）")] = None,
    team: TeamOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """校验条件表达式，并预览按当前 CRM 会对多少客户触发（--team：只统计该团队的客户）。"""
    from copilot.agent.conditions import check_condition
    from copilot.features.suggestions.suggester import parse_as_of

    problem = check_condition(expression)
    if problem:
        fail(problem)
    result = services().rules_admin.preview(expression, as_of=parse_as_of(as_of), team_id=team)
    if as_json:
        emit_json(result)
        return
    typer.echo(f"{result['message']}：{'、'.join(result['customers'])}")
