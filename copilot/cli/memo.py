"""`copilot memo FILE --customer ID [--json]`: the memo pipeline, synchronously (DESIGN §5.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, services
from copilot.domain import User

JsonOpt = Annotated[bool, typer.Option("--json", help="输出一个 JSON 文档")]


def memo(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="拜访录音：amr silk m4a mp3 wav ogg …")
    ],
    customer: Annotated[str, typer.Option("--customer", help="客户 id（CRM 中的客户）")],
    as_json: JsonOpt = False,
) -> None:
    """把一段拜访录音转成文字、拜访记录（需求、异议、竞品、下一步）和 CRM 拜访日志草稿。"""

    svc = services()
    snapshot = svc.crm.get_customer(customer)
    if snapshot is None:
        fail(f"客户 {customer} 不存在（先用 copilot crm import 导入 CRM 数据）")
    # The CLI acts for the customer's owner: the memo is theirs, as if they had uploaded it.
    owner = svc.users.get(snapshot.owner_user_id) if snapshot.owner_user_id else None
    user = owner or User(id="cli", name="命令行", role="admin", team_id=None)
    pipeline = svc.memos
    data = file.read_bytes()
    if len(data) > pipeline.max_bytes:
        fail(f"文件过大：最大支持 {pipeline.max_bytes // (1024 * 1024)} MB。")
    memo_id = pipeline.accept(user, customer, data)
    result = pipeline.process(memo_id)
    view = pipeline.view(user, memo_id)
    transcript = result.get("transcript")
    doc = {
        "memo_id": memo_id,
        "status": view["status"],
        "error": view["error"],
        "transcript": transcript.to_json() if transcript is not None else None,
        "visit_record": view["visit_record"],
        "draft": view["draft"],
        "suggestions": view["suggestions"],
        "suggestions_note": view["suggestions_note"],
    }
    if as_json:
        emit_json(doc)
        if view["status"] != "done":
            raise typer.Exit(1)
        return
    if view["status"] != "done":
        fail((view["error"] or {}).get("message", "处理失败"))
    _print_human(doc)


def _print_human(doc: dict) -> None:
    record = doc["visit_record"]
    typer.echo(f"录音纪要 {doc['memo_id']}")
    for seg in doc["transcript"]["segments"]:
        typer.echo(f"  [{seg['start']:6.1f}–{seg['end']:6.1f}] {seg['text']}")
    customer = record.get("customer") or {}
    typer.echo(f"\n客户：{customer.get('name') or '未识别'}")
    if record["contacts"]:
        typer.echo(
            "联系人："
            + "、".join(f"{c['name']}（{c['role']}）" if c["role"] else c["name"] for c in record["contacts"])
        )
    for n in record["needs"]:
        typer.echo(f"需求：{n['text']}")
    for o in record["objections"]:
        typer.echo(f"异议[{o['type']}]：{o['text']}")
    if record["competitors"]:
        typer.echo("竞品：" + "、".join(c["name"] for c in record["competitors"]))
    for s in record["next_steps"]:
        due = f"，截止 {s['due']}" if s["due"] else "，无截止日期"
        typer.echo(f"下一步：{s['action']}（负责人：{s['owner']}{due}）")
    typer.echo(
        f"情绪：{record['sentiment']['value']}；阶段判断：{record['stage_hint']['value'] or '无法判断'}"
    )
    for item in record.get("missing") or []:
        typer.secho(f"  提示：{item}", fg=typer.colors.YELLOW)
    if record.get("note"):
        typer.secho(f"  说明：{record['note']}", fg=typer.colors.YELLOW)
    if doc["suggestions_note"]:
        typer.echo(doc["suggestions_note"])
