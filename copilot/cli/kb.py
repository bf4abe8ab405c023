from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, services

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
    k: Annotated[int, typer.Option("-k", help="返回条数")] = 5,
    user: Annotated[str | None, typer.Option("--user", help="按该用户的可见范围检索")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """检索知识库，返回带出处的片段。"""
    from copilot.features.kb_views import hit_json

    svc = services()
    visible = None
    if user:
        u = svc.users.get(user)
        if u is None:
            fail(f"用户 {user} 不存在")
        visible = svc.users.visible_teams(u)
    hits = svc.kb.search(query, k=k, visible_teams=visible)
    if as_json:
        emit_json({"query": query, "results": [hit_json(h) for h in hits]})
        return
    if not hits:
        typer.echo("没有找到相关内容。")
    for i, h in enumerate(hits, start=1):
        typer.secho(f"{i}. {h.label}  (score {h.score:.3f})", bold=True)
        typer.echo(f"   {h.chunk.text[:200]}")
