from __future__ import annotations

from typing import Annotated

import typer

from copilot.cli.common import emit_json, services

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """检查内置模型（向量模型、Whisper）是否就绪并可加载；不联网。"""
    from copilot.cli.models_check import check_models

    report = check_models(services(), load=True)
    ok = all(r["ok"] for r in report)
    if as_json:
        emit_json({"ok": ok, "models": report})
    else:
        for r in report:
            if r["ok"]:
                extra = f"维度 {r['dim']}" if "dim" in r else f"{r.get('size_bytes', 0) / 1e6:.0f} MB"
                typer.echo(
                    f"✓ {r['name']}：{r.get('model', '')} {r.get('path', '')}（{extra}，就绪 {r.get('ready_s', '?')} 秒）"
                )
            else:
                typer.secho(f"✗ {r['name']}：{r['error']}", fg=typer.colors.RED)
    if not ok:
        raise typer.Exit(1)
