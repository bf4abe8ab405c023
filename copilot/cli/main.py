"""`copilot` — the command line (DESIGN §5.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from copilot.cli import channels, evals, kb, llm, models, rules, worker
from copilot.cli import suggest as suggest_cli
from copilot.cli.common import emit_json, fail, services
from copilot.cli.memo import memo as memo_command

app = typer.Typer(
    help="销售副驾：中文优先、每条建议可追溯依据的销售助手。", no_args_is_help=True, add_completion=False
)
app.add_typer(kb.app, name="kb", help="知识库：导入与检索")
app.add_typer(models.app, name="models", help="本地模型：检查与准备")
app.add_typer(evals.app, name="eval", help="评测：检索、语音识别、下一步建议")
app.add_typer(rules.app, name="rules", help="跟进规则：从制度文档起草、批准、列出、预览")
app.add_typer(channels.app, name="channels", help="聊天渠道：钉钉 Stream 模式（无需公网 IP）")
app.add_typer(llm.app, name="llm", help="可选的本地大模型引擎（extra .[local-llm]）：准备模型、启动服务")
app.command("suggest")(suggest_cli.suggest)
app.command("memo")(memo_command)
app.command("worker")(worker.worker)
users_app = typer.Typer(help="用户与访问令牌", no_args_is_help=True)
crm_app = typer.Typer(help="CRM 数据", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(crm_app, name="crm")

JsonOpt = Annotated[bool, typer.Option("--json", help="输出一个 JSON 文档")]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64, help="API 进程数（多核或高并发回调时加大）")
    ] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="逐条请求日志")] = True,
    warm: Annotated[
        bool,
        typer.Option("--warm/--no-warm", help="启动后在后台加载向量模型与知识库（首个检索/建议无需等待）"),
    ] = True,
) -> None:
    """启动 Web/API 服务（默认 http://127.0.0.1:8000）。"""
    import os

    import uvicorn

    from copilot.api.access_log import log_config  # request lines without query strings (credentials)
    from copilot.api.app import LOCAL_CLI_HASH_ENV, create_app, warm_in_background
    from copilot.api.routes.local_cli import token_sha256
    from copilot.cli import local_server

    # The CLI of this home asks this server (kb search, suggest) instead of loading the models itself.
    token = local_server.new_token()
    digest = token_sha256(token)
    with local_server.advertised(local_server.client_url(host, port), token):
        if workers > 1:  # each process builds its own services from the environment
            os.environ[LOCAL_CLI_HASH_ENV] = digest  # inherited by the worker processes
            uvicorn.run("copilot.api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="info", access_log=access_log, log_config=log_config())  # fmt: skip
            return
        svc = services()
        if warm:
            warm_in_background(svc)
        uvicorn.run(create_app(svc, local_cli_token_sha256=digest), host=host, port=port, log_level="info",
                    access_log=access_log, log_config=log_config())  # fmt: skip


@app.command()
def run(
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口")] = 8000,
) -> None:
    """首次启动时导入演示数据，然后启动服务（`make run` 调用此命令）。"""
    from copilot.demo.seed import seed_if_empty

    svc = services()
    typer.echo("检查本地模型…")
    from copilot.cli.models_check import check_models

    for status in check_models(svc, load=False):
        mark = "✓" if status["ok"] else "✗"
        typer.echo(f"  {mark} {status['name']}：{status.get('path') or status.get('error')}")
        if not status["ok"]:
            fail(status["error"])
    from copilot.demo.dates import today_utc

    tokens = seed_if_empty(svc, progress=typer.echo, today=today_utc())  # the demo's "today" is today
    base = f"http://{host}:{port}"
    typer.echo("\n销售副驾已就绪：" + base)

    codes = svc.login_codes
    for t in tokens:  # one-time codes, never the API token itself (links end up in histories and logs)
        typer.echo(f"  {t['label']}（{t['user_id']}）登录链接：{base}/login?code={codes.mint(t['user_id'])}")
    typer.echo(
        f"  链接 {svc.settings.login_code_minutes} 分钟内有效、只能使用一次；过期后运行 copilot users login-link 用户ID 重新获取。\n"
        f"  API 调用使用 Authorization: Bearer <令牌>（演示令牌保存在 {svc.settings.home / 'demo_logins.json'}）\n"
    )
    serve(host=host, port=port)


@users_app.command("token")
def users_token(user_id: str, as_json: JsonOpt = False) -> None:
    """为用户签发 API 令牌（令牌只显示一次，数据库中仅保存哈希）。"""
    try:
        token = services().users.issue_token(user_id, label="cli")
    except LookupError:
        fail(f"用户 {user_id} 不存在（先用 copilot crm import 导入用户）")
    if as_json:
        emit_json({"user_id": user_id, "token": token})
    else:
        typer.echo(token)


@users_app.command("login-link")
def users_login_link(
    user_id: str,
    base_url: Annotated[str, typer.Option("--base-url", help="服务地址")] = "http://127.0.0.1:8000",
    as_json: JsonOpt = False,
) -> None:
    """生成一次性网页登录链接（默认 10 分钟内有效，只能使用一次；不含 API 令牌）。"""

    svc = services()
    try:
        code = svc.login_codes.mint(user_id)
    except LookupError:
        fail(f"用户 {user_id} 不存在（先用 copilot crm import 导入用户）")
    url = f"{base_url.rstrip('/')}/login?code={code}"
    minutes = svc.settings.login_code_minutes
    if as_json:
        emit_json({"user_id": user_id, "url": url, "expires_in_s": minutes * 60})
    else:
        typer.echo(url)
        typer.secho(f"{minutes} 分钟内有效，只能使用一次。", err=True)


@users_app.command("revoke")
def users_revoke(user_id: str, as_json: JsonOpt = False) -> None:
    """吊销用户的全部令牌，并结束其全部网页会话。"""

    svc = services()
    n = svc.users.revoke_tokens(user_id)
    ended = svc.web_sessions.end_for_user(user_id)
    if as_json:
        emit_json({"user_id": user_id, "revoked": n, "sessions_ended": ended})
    else:
        typer.echo(f"已吊销 {n} 个令牌，结束 {ended} 个网页会话")


@crm_app.command("import")
def crm_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON（DESIGN §5.6）或 CSV/XLSX 客户表")
    ],
    as_json: JsonOpt = False,
) -> None:
    """导入 CRM 数据；按 id 幂等（重复导入只更新，不会重复）。"""
    from copilot.features.crm_import import CRMImporter, ImportFileError

    svc = services()
    try:
        report = CRMImporter(svc.engine, svc.local_crm, svc.users).import_file(file)
    except ImportFileError as exc:
        fail(str(exc))
    if as_json:
        emit_json(report.to_json())
        return
    data = report.to_json()
    typer.echo(
        f"团队 {data['teams']}，用户 {data['users']}，客户新增 {data['customers']['added']}、"
        f"更新 {data['customers']['updated']}，录音纪要 {data['memos']}"
    )
    for err in report.errors:
        where = f"第 {err['row']} 行" if "row" in err else f"{err.get('section')} 第 {err.get('index')} 条"
        typer.secho(f"  跳过 {where}：{err['message']}", fg=typer.colors.YELLOW)


@app.command()
def outbox(
    action: Annotated[str, typer.Argument(help="list | retry | cancel")] = "list",
    ids: Annotated[
        list[int] | None, typer.Argument(help="retry/cancel 的 outbox 行 id；retry 不填则重试全部失败行")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="list 时按状态过滤：pending delivered failed cancelled")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """待写入 CRM 的变更（发件箱）：查看、重试、取消。"""
    from copilot.features.writeback.commands import cancel_outbox, list_outbox, retry_outbox

    engine = services().engine
    if action == "list":
        result = list_outbox(engine, status=status)
    elif action == "retry":
        result = retry_outbox(engine, ids or None, user_id="cli")
    elif action == "cancel":
        if not ids:
            fail("cancel 需要指定 outbox 行 id")
        result = cancel_outbox(engine, ids, user_id="cli")
    else:
        fail(f"未知操作 {action!r}，可选：list、retry、cancel")
    if as_json:
        emit_json(result)
    else:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))


@app.command()
def transcribe(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="音频：amr silk m4a mp3 wav ogg …")
    ],
    as_json: JsonOpt = False,
) -> None:
    """把一段录音转写为带时间戳的文字。"""
    from copilot.voice.decode import AudioError
    from copilot.voice.transcribe import require_speech

    try:
        result = require_speech(services().transcriber.transcribe(file))  # nothing heard is a failure
    except AudioError as exc:
        if as_json:  # scripts read the stable code; the rep reads the Chinese reason on stderr
            emit_json({"error": {"code": exc.code, "message": exc.message}})
        fail(exc.message)
    if as_json:
        emit_json(result.to_json())
        return
    for seg in result.segments:
        typer.echo(f"[{seg.start:6.1f}–{seg.end:6.1f}] {seg.text}")
    typer.echo(json.dumps({"language": result.language, "duration_s": result.duration_s, "rtf": result.rtf}))


def main() -> None:  # pragma: no cover - console entry
    app()
