"""Voice memos: upload → (job) decode → transcribe → extract visit record → draft CRM visit log.

    pipeline = memo_pipeline(services)
    memo_id = pipeline.accept(user, "c_renkang", audio_bytes)   # stored in COPILOT_HOME/uploads, row queued
    pipeline.enqueue(memo_id)                                    # or pipeline.process(memo_id) synchronously
    pipeline.view(user, memo_id)                                 # status, transcript, visit record, draft
    pipeline.confirm(user, memo_id, {"notes": "…"})              # the rep confirms (edits) the visit log

The upload is written to disk before anything else and is never deleted, so a memo that fails (corrupt,
truncated, silent, too long, no speech heard) or whose process dies mid-transcription is not lost:
failures are stored as ``{"code", "message"}`` (Chinese), and ``resume_pending()`` re-queues memos left queued/processing.
Confirming the draft visit log goes through the CRM write-back path (``copilot.writeback.apply``: audit,
outbox, idempotent CRM write) under the key ``"{memo_id}:log_visit"``; its status is read back from the
outbox, so the memo row needs no extra column. Logs carry memo ids only, never transcript text.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update

from copilot.access import customer_for
from copilot.domain import ProposedChange, User
from copilot.errors import AppError
from copilot.storage import tables as t
from copilot.voice import ModelUnavailable
from copilot.voice.decode import AudioError, decode_audio, detect_format
from copilot.voice.extract import ExtractionContext, extract_visit, locator, script_segments
from copilot.voice.transcribe import require_speech
from copilot.writeback import outbox
from copilot.writeback.apply import apply_change

if TYPE_CHECKING:
    from connectors.crm.base import CRM, CustomerSnapshot
    from copilot.jobs import JobQueue
    from copilot.services import Services
    from copilot.users import UserDirectory

logger = logging.getLogger(__name__)

PENDING = ("queued", "processing")
_INTERNAL = "处理录音时出错，录音已保存，请稍后重试或联系管理员。"
_MAX_CONTEXT_CUSTOMERS = 50
# What the rep may change in the draft visit log before confirming; the rest (customer, rep, memo) is fixed.
EDITABLE_VISIT_FIELDS = ("date", "type", "contacts", "notes")
_MAX_NOTES = 2000

SuggestFn = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_when(value: str | None) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return datetime.now().astimezone()


class MemoPipeline:
    def __init__(
        self,
        *,
        engine: Engine,
        crm: CRM,
        users: UserDirectory,
        uploads_dir: Path,
        transcriber: Callable[[], Any],
        llm: Any = None,
        jobs: JobQueue | None = None,
        max_bytes: int,
        max_seconds: float,
        suggest: SuggestFn | None = None,
        kb: Callable[[], Any] | None = None,
        embedder: Callable[[], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.crm = crm
        self.users = users
        self.uploads_dir = Path(uploads_dir)
        self._transcriber = transcriber
        self.llm = llm
        self.jobs = jobs
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.suggest = suggest
        self._kb = kb  # () -> the KB (or its catalogue) for hotwords, None when there is none
        self._embedder = embedder  # () -> the embedder when already loaded (objection typing), else None

    # -- upload ------------------------------------------------------------------------------------
    def accept(
        self, user: User, customer_id: str, data: bytes, *, recorded_at: datetime | None = None
    ) -> str:
        """Check scope and size, store the bytes, create the memo row (queued). Raises AppError."""
        customer_for(user, customer_id, crm=self.crm, users=self.users)
        if len(data) > self.max_bytes:
            raise AppError("payload_too_large", f"文件过大：最大支持 {self.max_bytes // (1024 * 1024)} MB。")
        memo_id = f"memo_{secrets.token_hex(8)}"
        path = self._store(memo_id, data)
        when = recorded_at or datetime.now().astimezone()
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.memos).values(
                    id=memo_id, customer_id=customer_id, user_id=user.id, recorded_at=when.isoformat(),
                    status="queued", transcript="", segments=[], audio_path=str(path), created_at=_now(),
                )
            )  # fmt: skip
        logger.info("memo %s uploaded by user %s (%d bytes)", memo_id, user.id, len(data))
        return memo_id

    def _store(self, memo_id: str, data: bytes) -> Path:
        # The name is ours (id + sniffed format), never the client's file name.
        self.uploads_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.uploads_dir / f"{memo_id}.{detect_format(data) or 'bin'}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return path

    @property
    def _remote_jobs(self) -> bool:
        return type(self.jobs).__name__ == "RedisJobQueue"

    def enqueue(self, memo_id: str) -> None:
        if self.jobs is None:
            self.process(memo_id)
        elif self._remote_jobs:  # a worker process rebuilds its own services and runs the job by name
            self.jobs.submit(process_memo_job, memo_id)
        else:
            self.jobs.submit(self.process, memo_id)

    def resume_pending(self) -> list[str]:
        """Re-queue memos a previous process left queued or processing (their uploads are on disk).
        On Redis the queue itself keeps (and re-delivers) jobs across restarts, so nothing is done."""
        if self._remote_jobs:
            return []
        with self.engine.connect() as conn:
            ids = [r.id for r in conn.execute(select(t.memos.c.id).where(t.memos.c.status.in_(PENDING),
                                                                         t.memos.c.audio_path.is_not(None)))]  # fmt: skip
        for memo_id in ids:
            logger.info("memo %s resumed after restart", memo_id)
            self.enqueue(memo_id)
        return ids

    # -- the job -----------------------------------------------------------------------------------
    def process(self, memo_id: str) -> dict[str, Any]:
        """Decode → transcribe → extract; the row ends ``done`` or ``failed`` (Chinese error). Returns
        ``{"transcript": Transcript|None, "record": VisitRecord|None}`` for synchronous callers."""
        row = self._row(memo_id)
        if row is None or row.status in ("done", "failed"):
            return {"transcript": None, "record": None}
        self._set(memo_id, status="processing")
        try:
            transcript, record = self._run(row)
        except AudioError as exc:
            return self._fail(memo_id, exc.code, exc.message)
        except ModelUnavailable as exc:
            return self._fail(memo_id, "model_unavailable", str(exc))
        except Exception as exc:
            logger.exception("memo %s failed: %s", memo_id, type(exc).__name__)
            return self._fail(memo_id, "internal_error", _INTERNAL)
        visit = record.to_json()
        visit["transcription"] = {"language": transcript.language, "duration_s": round(transcript.duration_s, 2),
                                  "rtf": round(transcript.rtf, 4), "decoding": transcript.decoding}  # fmt: skip
        self._set(
            memo_id, status="done", transcript=transcript.text, error=None, visit_record=visit,
            segments=[{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments],
        )  # fmt: skip
        logger.info("memo %s done (%d segments, mode %s)", memo_id, len(transcript.segments), record.mode)
        self._suggest(memo_id, visit)
        return {"transcript": transcript, "record": record}

    def _suggest(self, memo_id: str, visit: dict[str, Any]) -> None:
        """Suggestions produced from the finished memo (the agent reads done memos), kept with the record."""
        if self.suggest is None:
            return
        try:
            suggestions = self.suggest(memo_id, visit)
        except Exception as exc:  # suggestions are extra: the memo stays done
            logger.warning("memo %s suggestions failed: %s", memo_id, type(exc).__name__)
            return
        self._set(memo_id, visit_record={**visit, "suggestions": suggestions})

    def _run(self, row: Any):
        path = Path(row.audio_path or "")
        if not path.is_file():
            raise AudioError("missing_upload", "找不到上传的录音文件，请重新上传。")
        audio = decode_audio(path, max_bytes=self.max_bytes, max_seconds=self.max_seconds)
        context = self.context_for(row.customer_id, row.user_id)
        hotwords = self.hotwords(context, row.user_id)
        transcript = self._transcriber().transcribe(audio.samples, hotwords=hotwords)
        transcript = require_speech(replace(transcript, decoding=audio.report()))  # no words, no record
        record = extract_visit(
            transcript.segments, recorded_at=_parse_when(row.recorded_at), context=context, llm=self.llm,
            embedder=_optional(self._embedder, "embedder"),
        )  # fmt: skip
        return transcript, record

    def hotwords(self, context: ExtractionContext, user_id: str | None) -> list[str]:
        """CRM names plus the KB dictionary the rep may see (when the KB is at hand)."""
        kb = _optional(self._kb, "knowledge base")
        user = self.users.get(user_id) if kb is not None and user_id else None
        teams = self.users.visible_teams(user) if user is not None else set()
        return memo_hotwords(context, kb, visible_teams=teams)

    def _fail(self, memo_id: str, code: str, message: str) -> dict[str, Any]:
        self._set(memo_id, status="failed", error={"code": code, "message": message})
        logger.info("memo %s failed: %s", memo_id, code)
        return {"transcript": None, "record": None, "error": {"code": code, "message": message}}

    def context_for(self, customer_id: str | None, user_id: str | None) -> ExtractionContext:
        """Names to listen for and match: the memo's customer, plus competitors across the rep's customers."""
        snapshots: list[CustomerSnapshot] = []
        chosen = self.crm.get_customer(customer_id) if customer_id else None
        if chosen is not None:
            snapshots.append(chosen)
        others = self.crm.list_customers(owner_ids={user_id} if user_id else None)[:_MAX_CONTEXT_CUSTOMERS]
        for summary in others:
            if summary.id != customer_id:
                snap = self.crm.get_customer(summary.id)
                if snap is not None:
                    snapshots.append(snap)
        return ExtractionContext.from_snapshots(snapshots, customer_id=customer_id)

    # -- reading -----------------------------------------------------------------------------------
    def _row(self, memo_id: str):
        with self.engine.connect() as conn:
            return conn.execute(select(t.memos).where(t.memos.c.id == memo_id)).first()

    def _set(self, memo_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.memos).where(t.memos.c.id == memo_id).values(**values))

    def view(self, user: User, memo_id: str) -> dict[str, Any]:
        """The memo for its owner or a manager who sees the owner; AppError 404/403 otherwise."""
        row = self._row(memo_id)
        if row is None:
            raise AppError("not_found", f"录音纪要 {memo_id} 不存在。")
        owners = self.users.visible_owner_ids(user)
        if row.user_id != user.id and (
            not user.is_manager or (owners is not None and row.user_id not in owners)
        ):
            raise AppError("forbidden", "无权查看该录音纪要：只有上传人及其经理可以查看。")
        return self.to_json(row)

    # -- confirming the draft visit log -------------------------------------------------------------
    def confirm(self, user: User, memo_id: str, edited: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The uploader confirms the draft CRM visit log, optionally edited (``EDITABLE_VISIT_FIELDS``).

        It goes through the write-back path (audit + outbox + idempotent CRM write) under the key
        ``"{memo_id}:log_visit"``: confirming again (or twice at once) leaves one visit in the CRM and
        changes nothing; the first confirmation's fields stand. Only the uploader may confirm (a manager
        sees the memo but does not speak for the rep). Returns the memo view with ``confirmation``."""
        row = self._row(memo_id)
        if row is None:
            raise AppError("not_found", f"录音纪要 {memo_id} 不存在。")
        if row.user_id != user.id:
            raise AppError("forbidden", "只有上传该录音的销售本人可以确认拜访日志。")
        customer_for(user, row.customer_id, crm=self.crm, users=self.users)  # still theirs?
        if row.status != "done" or not row.visit_record:
            raise AppError(
                "conflict", "录音纪要尚未处理完成（或处理失败），暂时不能确认拜访日志。", status=409
            )
        draft = draft_visit_log(row, dict(row.visit_record))
        fields = {**draft["fields"], **_clean_edits(edited or {})}
        try:
            apply_change(
                self.engine, self.crm, user_id=user.id, change={"op": "log_visit", "fields": fields},
                evidence_ids=[memo_id], key=confirm_key(memo_id),
            )  # fmt: skip
        except ValueError as exc:
            raise AppError("validation_error", str(exc)) from exc
        logger.info("memo %s visit log confirmed by user %s", memo_id, user.id)
        return self.to_json(self._row(memo_id))

    def confirmation(self, row: Any, draft: Mapping[str, Any] | None) -> dict[str, Any]:
        """``{"status","edited","ref",…}``: ``unconfirmed`` until the rep confirms, then the write-back
        status (pending → delivered, or failed/cancelled with a Chinese message) and the CRM record."""
        entry = outbox.get(self.engine, confirm_key(row.id))
        if entry is None:
            return {"status": "unconfirmed", "edited": False, "ref": None}
        written = entry.get("payload") or {}
        proposed = (draft or {}).get("fields") or {}
        changed = [k for k in EDITABLE_VISIT_FIELDS if k in written and written[k] != proposed.get(k)]
        return {
            "status": entry["status"],
            "edited": bool(changed),
            "edited_fields": changed,
            "ref": entry.get("result"),
            "fields": written,
            "confirmed_by": entry.get("user_id"),
            "confirmed_at": entry.get("created_at"),
            "message": entry.get("last_error") if entry["status"] != outbox.DELIVERED else None,
        }

    def to_json(self, row: Any) -> dict[str, Any]:
        record = dict(row.visit_record) if row.visit_record else None
        draft = draft_visit_log(row, record) if record and row.status == "done" else None
        suggestions = record.pop("suggestions", []) if record else []
        segments = [
            {
                "index": i,
                "start": s["start"],
                "end": s["end"],
                "locator": locator(s["start"], s["end"]),
                "text": s["text"],
            }
            for i, s in enumerate(row.segments or [])
        ]
        return {
            "memo_id": row.id,
            "customer_id": row.customer_id,
            "user_id": row.user_id,
            "recorded_at": row.recorded_at,
            "status": row.status,
            "error": row.error,
            "transcript": {"text": row.transcript or "", "segments": segments},
            "visit_record": record,
            "draft": draft,
            "suggestions": suggestions,
            "suggestions_note": None if self.suggest else "建议生成尚未接入：暂无基于录音的建议。",
            "confirmation": self.confirmation(row, draft) if draft is not None else None,
            "created_at": row.created_at.isoformat() if row.created_at else None,
        }


MAX_HOTWORDS = 30  # Whisper's prompt is short (transcribe.py also caps it at 200 characters)


def _optional(get: Callable[[], Any] | None, what: str) -> Any:
    """An optional helper (KB, embedder): None when absent or when getting it fails; never fails a memo."""
    if get is None:
        return None
    try:
        return get()
    except Exception as exc:
        logger.warning("memo %s unavailable: %s", what, type(exc).__name__)
        return None


def kb_dictionary(kb: Any, visible_teams: set[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """``(competitors, products, terms)`` of a KnowledgeBase (or its ``Catalog``: anything with
    ``documents()`` and, optionally, ``terms()``/``catalog.terms()``); empty lists when it is None.
    Names come only from documents the rep may see (``visible_teams``, None = all)."""
    if kb is None:
        return [], [], []
    from types import SimpleNamespace

    from copilot.suggestions import competitor_names
    from knowledge_base.retrieval import document_allowed

    docs = [d for d in kb.documents() if document_allowed(d, visible_teams)]
    competitors = competitor_names(SimpleNamespace(documents=lambda: docs))
    products = [d.product.strip() for d in docs if d.product and d.product.strip()]
    terms_of = getattr(kb, "terms", None) or getattr(getattr(kb, "catalog", None), "terms", None)
    terms = list(terms_of()) if terms_of else []
    return competitors, products, terms


def memo_hotwords(
    context: ExtractionContext,
    kb: Any = None,
    *,
    visible_teams: set[str] | None = None,
    limit: int = MAX_HOTWORDS,
) -> list[str]:
    """Names Whisper should spell right, most relevant first, de-duplicated, at most ``limit``: the
    memo's customer (short forms) and its contacts, the CRM's competitors, the KB's competitors (its
    battlecards) and product names, the rep's other customers (when none was chosen), then the KB's
    stored dictionary terms. A KB that cannot be read only costs its words."""
    chosen = [c for c in context.customers if c.id == context.customer_id]
    own = [a for c in chosen for a in c.aliases[-2:]]
    own += [c.name for c in context.contacts if c.customer_id == context.customer_id]
    others = [] if chosen else [c.aliases[-1] for c in context.customers]
    try:
        kb_competitors, products, terms = kb_dictionary(kb, visible_teams)
    except Exception as exc:
        logger.warning("memo hotwords without the knowledge base: %s", type(exc).__name__)
        kb_competitors, products, terms = [], [], []
    words = [*own, *context.competitors, *kb_competitors, *products, *others, *terms]
    out = list(dict.fromkeys(w.strip() for w in words if w and w.strip()))
    return out[:limit]


def confirm_key(memo_id: str) -> str:
    """The idempotency key of a memo's visit log in the write-back outbox and the CRM."""
    return f"{memo_id}:log_visit"


def _clean_edits(edited: Mapping[str, Any]) -> dict[str, Any]:
    """The rep's edits to the draft, checked; AppError 422 (Chinese) for anything else."""
    unknown = sorted(set(edited) - set(EDITABLE_VISIT_FIELDS))
    if unknown:
        raise AppError(
            "validation_error",
            f"不能修改字段：{'、'.join(unknown)}；可修改：{'、'.join(EDITABLE_VISIT_FIELDS)}。",
        )
    out: dict[str, Any] = {}
    if "date" in edited:
        try:
            out["date"] = date.fromisoformat(str(edited["date"])).isoformat()
        except ValueError:
            raise AppError("validation_error", "拜访日期格式应为 YYYY-MM-DD。") from None
    if "type" in edited:
        out["type"] = str(edited["type"] or "").strip()[:50]
    if "contacts" in edited:
        contacts = edited["contacts"] or []
        if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
            raise AppError("validation_error", "联系人应为姓名列表。")
        out["contacts"] = [c.strip() for c in contacts if c.strip()][:20]
    if "notes" in edited:
        notes = str(edited["notes"] or "")
        if len(notes) > _MAX_NOTES:
            raise AppError("validation_error", f"拜访记录最多 {_MAX_NOTES} 字。")
        out["notes"] = notes
    return out


def draft_visit_log(row: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """The CRM visit log the rep only has to confirm (ProposedChange ``log_visit``, DESIGN §5.4)."""
    when = _parse_when(row.recorded_at).date() if row.recorded_at else date.today()
    parts = []
    if record.get("needs"):
        parts.append("需求：" + "；".join(n["text"] for n in record["needs"]))
    if record.get("objections"):
        parts.append("异议：" + "；".join(f"[{o['type']}] {o['text']}" for o in record["objections"]))
    if record.get("competitors"):
        parts.append("竞品：" + "、".join(c["name"] for c in record["competitors"]))
    if record.get("next_steps"):
        parts.append(
            "下一步："
            + "；".join(
                s["action"] + (f"（{s['due']} 前）" if s.get("due") else "") for s in record["next_steps"]
            )
        )
    stage = (record.get("stage_hint") or {}).get("value")
    if stage:
        parts.append(f"阶段判断：{stage}")
    contacts = [c["name"] for c in record.get("contacts") or [] if c.get("in_crm")]
    change = ProposedChange(
        op="log_visit",
        fields={
            "customer_id": row.customer_id,
            "date": when.isoformat(),
            "type": "拜访（语音纪要）",
            "user_id": row.user_id,
            "contacts": contacts,
            "notes": "\n".join(parts)[:2000],
            "memo_id": row.id,
        },
    )
    return asdict(change)


def memo_pipeline(services: Services) -> MemoPipeline:
    """The one MemoPipeline of these services (jobs shared with the channels, in-process by default)."""
    from copilot.channels_service import jobs_for

    def build() -> MemoPipeline:
        cfg = services.settings
        return MemoPipeline(
            engine=services.engine,
            crm=services.crm,
            users=services.users,
            uploads_dir=cfg.home / "uploads",
            transcriber=lambda: services.transcriber,
            llm=services.llm,
            jobs=services.jobs if hasattr(type(services), "jobs") else jobs_for(services),
            max_bytes=cfg.max_upload_bytes,
            max_seconds=float(cfg.max_audio_seconds),
            suggest=_agent_suggest(services),
            kb=lambda: _kb_if_cheap(services),
            embedder=lambda: _loaded(services, "embedder"),
        )

    return services._once("_memo_pipeline", build)


def _loaded(services: Services, name: str) -> Any:
    """A heavy component of ``services`` only if it is already loaded (or handed in), else None."""
    return vars(services).get(f"_{name}")


def _kb_if_cheap(services: Services) -> Any:
    """The loaded KB, else its catalogue straight from the database (no embedding model, no vector
    store) when the KB tables exist; None when the KB was switched off (``provide("kb", None)``)."""
    if "_kb" in vars(services):
        return vars(services)["_kb"]
    from sqlalchemy import inspect

    from knowledge_base.catalog import Catalog, kb_documents

    if not inspect(services.engine).has_table(kb_documents.name):
        return None
    return Catalog(services.engine)


def process_memo_job(memo_id: str) -> None:
    """The memo job by name, for ``copilot worker`` processes (Redis queue)."""
    from copilot.jobs.redis_queue import worker_services

    memo_pipeline(worker_services()).process(memo_id)


def _agent_suggest(services: Services) -> SuggestFn | None:
    """Suggestions from the agent (``copilot.suggestions``) that cite this memo; None if it is absent."""
    try:
        from copilot.suggestions import suggester_for
    except ImportError:  # pragma: no cover - the agent is optional
        return None

    def suggest(memo_id: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        row = memo_pipeline(services)._row(memo_id)
        user = services.users.get(row.user_id) if row is not None and row.user_id else None
        if user is None:
            return []
        result = suggester_for(services).for_customer(user, row.customer_id, channel="memo")
        return [
            s.to_json()
            for s in result.suggestions
            if any(c.kind == "memo" and c.ref == memo_id for c in s.citations)
        ]

    return suggest


# -- evaluation wiring (evals/extraction.py takes the extractor as a parameter) ----------------------

DEMO_CRM = Path(__file__).resolve().parent / "demo" / "crm.json"


def _snapshots_from_json(data: Mapping[str, Any]) -> list[Any]:
    from connectors.crm.base import Contact, CustomerSnapshot, Opportunity

    out = []
    for c in data.get("customers") or []:
        out.append(
            CustomerSnapshot(
                id=c["id"], name=c["name"], owner_user_id=c.get("owner_user_id"),
                contacts=tuple(Contact(x["name"], x.get("role", ""), bool(x.get("is_decision_maker"))) for x in c.get("contacts") or []),
                opportunities=tuple(Opportunity(o["id"], o["name"], o["stage"], competitors=tuple(o.get("competitors") or ()))
                                    for o in c.get("opportunities") or []),
            )
        )  # fmt: skip
    return out


def eval_extractor(
    services: Services, *, embedder: Any = None
) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``extract(row)`` for ``evals.extraction.run_extraction``: the memo's ``script`` (as sentence
    segments) or ``audio`` (transcribed) → the visit record in the gold shape. The CRM supplies names and
    competitors; when it is empty, the bundled demo CRM does (the dataset's customers come from it).
    ``embedder`` types the objections the lexicons cannot (as the pipeline does when it is loaded)."""
    crm = services.crm
    snapshots = [s for s in (crm.get_customer(c.id) for c in crm.list_customers()) if s is not None]
    if not snapshots:
        snapshots = _snapshots_from_json(json.loads(DEMO_CRM.read_text(encoding="utf-8")))
    known_ids = {s.id for s in snapshots}
    kb = _optional(lambda: _kb_if_cheap(services), "knowledge base")

    def extract(row: Mapping[str, Any]) -> dict[str, Any]:
        customer_id = row.get("customer") if row.get("customer") in known_ids else None
        context = ExtractionContext.from_snapshots(snapshots, customer_id=customer_id)
        when = _parse_when(row.get("recorded_at"))
        if row.get("audio"):
            segments = services.transcriber.transcribe(
                Path(row["audio"]), hotwords=memo_hotwords(context, kb)
            ).segments
        else:
            segments = script_segments(row.get("script") or "")
        record = extract_visit(
            segments, recorded_at=when, context=context, llm=services.llm, embedder=embedder
        )
        return record.to_eval()

    return extract
