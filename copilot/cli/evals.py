"""`copilot eval …`: wires the real system into the harness in evals/ (which never imports copilot)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from copilot.cli.common import emit_json, fail, services
from copilot.cli.suggest import eval_suggest

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="输出 JSON")]
app.command("suggest")(eval_suggest)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                fail(f"{path} 第 {n} 行不是合法 JSON")
    return rows


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key}: {value}")


@app.command("retrieval")
def retrieval(
    queries: Annotated[Path, typer.Option("--queries", exists=True, dir_okay=False)],
    passages: Annotated[Path | None, typer.Option("--passages", exists=True, dir_okay=False)] = None,
    docs: Annotated[Path | None, typer.Option("--docs", exists=True, file_okay=False)] = None,
    k: Annotated[int, typer.Option("-k")] = 10,
    mode: Annotated[
        str,
        typer.Option("--mode", help="hybrid（默认，向量 + BM25 融合）| dense（仅向量）| bm25（仅关键词）"),
    ] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """检索评测：在临时索引上计算 recall@1/5/10、MRR@10、nDCG@10 与延迟。"""
    from sqlalchemy import create_engine

    from evals.retrieval import run_retrieval_docs, run_retrieval_passages
    from knowledge_base.base import KnowledgeBase
    from knowledge_base.retrieval import RetrievalWeights

    if (passages is None) == (docs is None):
        fail("请二选一：--passages P.jsonl 或 --docs DIR")
    try:
        weights = RetrievalWeights.for_mode(mode)
    except ValueError as exc:
        fail(str(exc))
    embedder = services().embedder
    workdir = Path(tempfile.mkdtemp(prefix="copilot-eval-"))

    def kb_factory() -> KnowledgeBase:
        engine = create_engine(f"sqlite:///{workdir / 'eval.db'}")
        return KnowledgeBase(
            engine=engine,
            embedder=embedder,
            chroma_path=workdir / "chroma",
            collection="eval",
            weights=weights,
        )

    qs = _read_jsonl(queries)
    if passages is not None:
        result = run_retrieval_passages(_read_jsonl(passages), qs, index_factory=kb_factory, k=k)
    else:
        result = run_retrieval_docs(docs, qs, kb_factory=kb_factory, k=k)
    _print(result, as_json)


@app.command("asr")
def asr(
    manifest: Annotated[Path, typer.Option("--manifest", exists=True, dir_okay=False)],
    as_json: JsonOpt = False,
) -> None:
    """语音识别评测：中文 CER、英文 WER、实时率。"""
    from evals.asr import run_asr

    _print(run_asr(manifest, transcriber=services().transcriber), as_json)


@app.command("extraction")
def extraction(
    memos: Annotated[Path, typer.Option("--memos", exists=True, dir_okay=False)],
    embedder: Annotated[bool, typer.Option("--embedder/--no-embedder", help="用向量模型判别异议类型")] = True,
    as_json: JsonOpt = False,
) -> None:
    """拜访纪要抽取评测：需求、异议、竞品、下一步的 F1，异议类型、情绪与阶段准确率。"""
    from copilot.features.memos.evaluation import eval_extractor
    from copilot.features.memos.hotwords import optional
    from evals.extraction import run_extraction

    c = services()
    extract = eval_extractor(
        crm=c.crm, transcriber=lambda: c.transcriber, llm=c.llm,
        kb=optional(c.kb_if_cheap, "knowledge base"), embedder=c.embedder if embedder else None,
    )  # fmt: skip
    _print(run_extraction(memos, extract=extract), as_json)


@app.command("chat")
def chat(
    dialogues: Annotated[
        Path, typer.Option("--dialogues", exists=True, dir_okay=False, help="对话 JSONL（DESIGN §5.7）")
    ],
    as_json: JsonOpt = False,
) -> None:
    """多轮对话评测：意图、客户识别、CRM 变更提议、未经确认的写入、引用有效性、延迟。

    在当前 COPILOT_HOME 的 CRM 与知识库上运行；对话中销售“确认”的变更会真实写入该 CRM（请用评测专用的数据目录）。"""
    from copilot.agent.citations import verify
    from copilot.agent.linker import Entity, names_of
    from copilot.domain import Citation
    from copilot.features.writeback import outbox
    from evals.chat import load_dialogues, run_chat

    c = services()
    rows = load_dialogues(dialogues)
    day: dict[str, str | None] = {"as_of": None}

    def reply(user_id: str, conversation_id: str | None, message: str, as_of: str | None) -> dict:
        from copilot.errors import AppError

        day["as_of"] = as_of
        user = c.users.get(user_id)
        if user is None:
            fail(f"对话中的用户 {user_id} 不存在（先导入该公司的 CRM 数据）")
        try:
            return c.conversation.reply(user, message, conversation_id=conversation_id, as_of=as_of).to_json()
        except AppError as error:  # a refusal is an answer too (e.g. an empty message)
            return {"conversation_id": conversation_id, "answer": error.detail, "citations": [], "suggestions": [],
                    "intent": None, "customer_id": None, "proposed_change": None, "clarify": None}  # fmt: skip

    def writes() -> int:
        return outbox.count(c.engine)

    def check(citation: dict) -> bool:
        from copilot.features.suggestions.suggester import parse_as_of

        # a fresh resolver per citation: confirmed changes in earlier turns change the CRM
        resolver = c.suggester.resolver(parse_as_of(day["as_of"]))
        cit = Citation(citation["kind"], citation["ref"], citation.get("locator", ""), citation.get("source", ""),
                       citation["quote"], citation.get("label", ""))  # fmt: skip
        return verify(cit, resolver)

    def leaked(response: dict, customer_id: str) -> bool:
        snap = c.crm.get_customer(customer_id)
        if snap is None:
            return False
        text = json.dumps(response, ensure_ascii=False)
        return any(n and len(n) >= 2 and n in text for n in names_of(Entity(snap.id, snap.name)))

    _print(run_chat(rows, reply=reply, writes=writes, verify=check, leaked=leaked), as_json)


@app.command("names")
def names(
    memos: Annotated[
        Path,
        typer.Option(
            "--memos", exists=True, dir_okay=False, help="录音 JSONL（audio、source/script、customer）"
        ),
    ],
    scripts: Annotated[
        Path | None, typer.Option("--scripts", help="source 指向的文字稿 JSONL（id、script）")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """转写中的名称准确率：客户、联系人、竞品、产品名称在拼音纠正前后写对的比例。"""
    from copilot.features.memos.hotwords import correct_transcript_names, memo_hotwords
    from copilot.voice.extract import ExtractionContext
    from evals.names import score_names

    c = services()
    rows = _read_jsonl(memos)
    texts = {r["id"]: r.get("script", "") for r in _read_jsonl(scripts)} if scripts else {}
    snapshots = [s for s in (c.crm.get_customer(x.id) for x in c.crm.list_customers()) if s is not None]
    scored = []
    for row in rows:
        context = ExtractionContext.from_snapshots(snapshots, customer_id=row.get("customer"))
        vocabulary = memo_hotwords(context, c.kb_if_cheap(), limit=1000)
        heard = c.transcriber.transcribe(memos.parent / row["audio"], hotwords=vocabulary[:30])
        fixed, _ = correct_transcript_names(heard, vocabulary)
        reference = row.get("script") or texts.get(row.get("source", ""), "")
        scored.append(
            {"reference": reference, "before": heard.text, "after": fixed.text, "vocabulary": vocabulary}
        )
    _print(score_names(scored), as_json)


@app.command("rules")
def rules(
    gold: Annotated[Path, typer.Option("--gold", exists=True, dir_okay=False, help="规则金标 JSONL")],
    as_json: JsonOpt = False,
) -> None:
    """规则起草评测：从知识库规则/制度文档起草的规则，对照文档中写明的规则（阈值与动作）。"""
    from evals.rule_drafts import run_rule_drafts

    _print(run_rule_drafts(_read_jsonl(gold), services().rules_admin.draft()), as_json)
