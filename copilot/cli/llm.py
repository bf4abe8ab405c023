"""`copilot llm …`: the optional local OpenAI-compatible engine (extra ``.[local-llm]``)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, services

app = typer.Typer(no_args_is_help=True)


def _model_path(quiet: bool = False):
    from copilot.infra.llm.local_engine import EngineError, ensure_model

    shown = {"pct": -1}

    def progress(done: int, total: int) -> None:
        pct = done * 100 // max(1, total)
        if not quiet and pct // 10 != shown["pct"] // 10:
            shown["pct"] = pct
            typer.echo(f"  拼接模型… {pct}%", err=True)

    try:
        return ensure_model(services().settings.models_dir, progress=progress)
    except EngineError as exc:
        fail(str(exc))


@app.command("prepare")
def prepare(as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """从已安装的模型分卷包拼接并校验本地模型（sha256），放入 COPILOT_MODELS_DIR/llm/。"""
    from copilot.infra.llm.local_engine import QWEN_CODER_05B

    path = _model_path(quiet=as_json)
    info = {"model": QWEN_CODER_05B.name, "path": str(path), "size_bytes": path.stat().st_size,
            "sha256": QWEN_CODER_05B.sha256, "licence": QWEN_CODER_05B.licence}  # fmt: skip
    if as_json:
        emit_json(info)
    else:
        typer.echo(f"✓ {info['model']}：{path}（{info['size_bytes'] / 1e6:.0f} MB，sha256 已校验）")


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="端口（只监听 127.0.0.1）")] = 18080,
    threads: Annotated[
        int | None,
        typer.Option(help="推理线程数（默认：CPU 核数减一；与其他进程抢核时 llama.cpp 会大幅变慢）"),
    ] = None,
) -> None:
    """启动本地 OpenAI 兼容大模型服务（llama.cpp + Qwen2.5-Coder-0.5B-Instruct，仅供测试与兜底）。"""
    from copilot.infra.llm.local_engine import INSTALL_HINT, QWEN_CODER_05B, engine_installed, server_argv

    if not engine_installed():
        fail(f"未安装 llama-cpp-python。{INSTALL_HINT}")
    path = _model_path()
    cfg = services().settings.llm
    argv = server_argv(path, port=port, n_ctx=cfg.context_tokens, n_threads=threads)
    typer.echo(
        f"本地大模型服务：http://127.0.0.1:{port}/v1（{QWEN_CODER_05B.name}，上下文 {cfg.context_tokens} tokens）\n"
        f"在另一个终端设置：OPENAI_BASE_URL=http://127.0.0.1:{port}/v1 OPENAI_API_KEY=local "
        f"COPILOT_LLM_MODEL={QWEN_CODER_05B.name} COPILOT_LLM_RESPONSE_FORMAT=json_object_schema",
        err=True,
    )
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter running llama_cpp.server, no shell
