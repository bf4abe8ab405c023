from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, server_report, services

app = typer.Typer(no_args_is_help=True)


@app.command("ingest")
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="文件或文件夹")],
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON 汇总")] = False,
) -> None:
    """导入知识库文档（增量：未改动的文件跳过，改动的替换，删除的移除）。"""
    from rich.progress import Progress

    kb = services().kb
    if as_json:
        report = kb.ingest(paths)
        emit_json(report.to_json() if hasattr(report, "to_json") else report)
        return
    with Progress(transient=True) as progress:
        task = progress.add_task("导入中", total=None)

        def on_progress(done: int, total: int, path: str) -> None:
            progress.update(task, completed=done, total=total, description=f"导入 {path}")

        report = kb.ingest(paths, progress=on_progress)
    data = report.to_json() if hasattr(report, "to_json") else report
    typer.echo(
        f"新增 {data['added']}，更新 {data['updated']}，未变 {data['unchanged']}，移除 {data['removed']}，"
        f"失败 {len(data['failed'])}"
    )
    for f in data["failed"]:
        typer.secho(f"  跳过 {f['path']}：{f['reason']}", fg=typer.colors.YELLOW)


@app.command("search")
def search(
    query: str,
    k: Annotated[int, typer.Option("-k", min=1, max=200, help="返回条数（1–200）")] = 5,
    user: Annotated[str | None, typer.Option("--user", help="按该用户的可见范围检索")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """检索知识库，返回带出处的片段（有同一数据目录的服务在运行时由它回答，无需加载模型）。"""
    data = server_report("kb/search", {"q": query, "k": k, "user": user})
    if data is None:
        from copilot.errors import AppError
        from copilot.features.cli_reports import kb_search_report

        svc = services()
        try:
            data = kb_search_report(svc.kb, svc.users, query, k=k, user_id=user)
        except AppError as exc:
            fail(exc.detail)
    if as_json:
        emit_json(data)
        return
    if not data["results"]:
        typer.echo("没有找到相关内容。")
    for i, h in enumerate(data["results"], start=1):
        typer.secho(f"{i}. {h['label']}  (score {h['score']:.3f})", bold=True)
        typer.echo(f"   {h['text'][:200]}")
