"""Voice memos: upload → (job) decode → transcribe → extract visit record → draft CRM visit log.

    pipeline = container.memos
    memo_id = pipeline.accept(user, "c_renkang", audio_bytes)   # stored in COPILOT_HOME/uploads, row queued
    pipeline.enqueue(memo_id)                                    # or pipeline.process(memo_id) synchronously
    pipeline.view(user, memo_id)                                 # status, transcript, visit record, draft
    pipeline.confirm(user, memo_id, {"notes": "…"})              # the rep confirms (edits) the visit log

The upload is written to disk before anything else, so a memo that fails (corrupt, truncated, silent,
too long, no speech heard) or whose process dies mid-transcription is not lost: failures are stored as
``{"code", "message"}`` (Chinese), and ``resume_pending()`` re-queues memos left queued/processing. The
upload of a failed memo is deleted after COPILOT_FAILED_UPLOAD_RETENTION_DAYS, and each user may upload
COPILOT_UPLOAD_QUOTA_BYTES per 24 hours (upload_limits.py).
Rows and uploads are ``MemoRepo``'s (repo.py). Confirming the draft visit log goes through the CRM
write-back path (``copilot.features.writeback.apply``: audit,
outbox, idempotent CRM write) under the key ``"{memo_id}:log_visit"``; its status is read back from the
outbox, so the memo row needs no extra column. Logs carry memo ids only, never transcript text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.domain import User
from copilot.errors import AppError
from copilot.features.memos.draft import (
    EDITABLE_VISIT_FIELDS,
    clean_edits,
    confirm_key,
    draft_visit_log,
    parse_when,
)
from copilot.features.memos.hotwords import correct_transcript_names, memo_hotwords, optional
from copilot.features.memos.repo import MemoRepo
from copilot.features.memos.upload_limits import check_quota, purge_failed_uploads
from copilot.features.writeback import outbox
from copilot.features.writeback.apply import apply_change
from copilot.identity.access import customer_for
from copilot.infra.jobs.port import runs_remotely
from copilot.voice import ModelUnavailable
from copilot.voice.decode import AudioError, decode_audio
from copilot.voice.extract import ExtractionContext, extract_visit, locator
from copilot.voice.transcribe import require_speech

if TYPE_CHECKING:
    from connectors.crm.base import CRM, CustomerSnapshot
    from copilot.identity.users import UserDirectory
    from copilot.infra.jobs import JobQueue

logger = logging.getLogger(__name__)

_INTERNAL = "处理录音时出错，录音已保存，请稍后重试或联系管理员。"
_MAX_CONTEXT_CUSTOMERS = 50

SuggestFn = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


class MemoPipeline:
    def __init__(
        self,
        *,
        repo: MemoRepo,
        crm: CRM,
        users: UserDirectory,
        transcriber: Callable[[], Any],
        llm: Any = None,
        jobs: JobQueue | None = None,
        max_bytes: int,
        max_seconds: float,
        suggest: SuggestFn | None = None,
        kb: Callable[[], Any] | None = None,
        embedder: Callable[[], Any] | None = None,
        quota_bytes: int = 0,
        failed_retention: timedelta | None = None,
    ) -> None:
        self.repo = repo
        self.quota_bytes = quota_bytes  # per user per 24 h; 0 = none
        self.failed_retention = failed_retention  # uploads of failed memos are deleted after it
        self.engine = repo.engine
        self.crm = crm
        self.users = users
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
        check_quota(self.engine, user.id, len(data), quota_bytes=self.quota_bytes)
        self.purge_failed()
        when = recorded_at or datetime.now().astimezone()
        memo_id = self.repo.create(customer_id=customer_id, user_id=user.id, recorded_at=when, data=data)
        logger.info("memo %s uploaded by user %s (%d bytes)", memo_id, user.id, len(data))
        return memo_id

    def purge_failed(self) -> int:
        """Delete uploads of memos that failed longer ago than the retention (never raises)."""
        if self.failed_retention is None:
            return 0
        try:
            return purge_failed_uploads(self.engine, older_than=self.failed_retention)
        except Exception as exc:  # noqa: BLE001 -- housekeeping must not fail an upload
            logger.warning("purging failed uploads failed: %s", type(exc).__name__)
            return 0

    def enqueue(self, memo_id: str) -> None:
        if self.jobs is None:
            self.process(memo_id)
        else:
            self.jobs.submit("process_memo", memo_id)

    def resume_pending(self) -> list[str]:
        """Re-queue memos a previous process left queued or processing (their uploads are on disk).
        On Redis the queue itself keeps (and re-delivers) jobs across restarts, so nothing is done."""
        self.purge_failed()
        if runs_remotely(self.jobs):
            return []
        ids = self.repo.pending_ids()
        for memo_id in ids:
            logger.info("memo %s resumed after restart", memo_id)
            self.enqueue(memo_id)
        return ids

    # -- the job -----------------------------------------------------------------------------------
    def process(self, memo_id: str) -> dict[str, Any]:
        """Decode → transcribe → extract; the row ends ``done`` or ``failed`` (Chinese error). Returns
        ``{"transcript": Transcript|None, "record": VisitRecord|None}`` for synchronous callers."""
        row = self.row(memo_id)
        if row is None or row.status in ("done", "failed"):
            return {"transcript": None, "record": None}
        self._set(memo_id, status="processing")
        try:
            transcript, record, corrections = self._run(row)
        except AudioError as exc:
            return self._fail(memo_id, exc.code, exc.message)
        except ModelUnavailable as exc:
            return self._fail(memo_id, "model_unavailable", str(exc))
        except Exception as exc:
            logger.exception("memo %s failed: %s", memo_id, type(exc).__name__)
            return self._fail(memo_id, "internal_error", _INTERNAL)
        visit = record.to_json()
        if corrections:  # names heard wrong, set right against the CRM and KB (the original kept for audit)
            visit["name_corrections"] = [{"heard": c.heard, "name": c.name} for c in corrections]
        visit["transcription"] = {"language": transcript.language, "duration_s": round(transcript.duration_s, 2),
                                  "rtf": round(transcript.rtf, 4), "decoding": transcript.decoding}  # fmt: skip
        self._set(
            memo_id, status="done", transcript=transcript.text, error=None, visit_record=visit,
            segments=[{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments],
        )  # fmt: skip
        logger.info("memo %s done (%d segments, mode %s)", memo_id, len(transcript.segments), record.mode)
        self.add_suggestions(memo_id, visit)
        return {"transcript": transcript, "record": record}

    def add_suggestions(self, memo_id: str, visit: dict[str, Any]) -> None:
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
        vocabulary = self.hotwords(context, row.user_id, limit=1000)  # every name, not only Whisper's prompt
        transcript, corrections = correct_transcript_names(transcript, vocabulary)
        record = extract_visit(
            transcript.segments, recorded_at=parse_when(row.recorded_at), context=context, llm=self.llm,
            embedder=optional(self._embedder, "embedder"),
        )  # fmt: skip
        return transcript, record, corrections

    def hotwords(self, context: ExtractionContext, user_id: str | None, *, limit: int = 30) -> list[str]:
        """CRM names plus the KB dictionary the rep may see (when the KB is at hand)."""
        kb = optional(self._kb, "knowledge base")
        user = self.users.get(user_id) if kb is not None and user_id else None
        teams = self.users.visible_teams(user) if user is not None else set()
        return memo_hotwords(context, kb, visible_teams=teams, limit=limit)

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
    def row(self, memo_id: str) -> Any:
        return self.repo.get(memo_id)

    def _set(self, memo_id: str, **values: Any) -> None:
        self.repo.update(memo_id, **values)

    def view(self, user: User, memo_id: str) -> dict[str, Any]:
        """The memo for its owner or a manager who sees the owner; AppError 404/403 otherwise."""
        row = self.row(memo_id)
        if row is None or not self._may_see(user, row):  # the same 404 either way: no probing
            raise AppError("not_found", f"录音纪要 {memo_id[:64]} 不存在。")
        return self.to_json(row)

    def _may_see(self, user: User, row: Any) -> bool:
        """The uploader, and managers (admins) who see the uploader."""
        owners = self.users.visible_owner_ids(user)
        return row.user_id == user.id or (user.is_manager and (owners is None or row.user_id in owners))

    # -- confirming the draft visit log -------------------------------------------------------------
    def confirm(self, user: User, memo_id: str, edited: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The uploader confirms the draft CRM visit log, optionally edited (``EDITABLE_VISIT_FIELDS``).

        It goes through the write-back path (audit + outbox + idempotent CRM write) under the key
        ``"{memo_id}:log_visit"``: confirming again (or twice at once) leaves one visit in the CRM and
        changes nothing; the first confirmation's fields stand. Only the uploader may confirm (a manager
        sees the memo but does not speak for the rep). Returns the memo view with ``confirmation``."""
        row = self.row(memo_id)
        if row is None or not self._may_see(user, row):
            raise AppError("not_found", f"录音纪要 {memo_id[:64]} 不存在。")
        if row.user_id != user.id:  # a manager sees the memo but does not speak for the rep
            raise AppError("forbidden", "只有上传该录音的销售本人可以确认拜访日志。")
        customer_for(user, row.customer_id, crm=self.crm, users=self.users, hide=False)  # still theirs?
        if row.status != "done" or not row.visit_record:
            raise AppError(
                "conflict", "录音纪要尚未处理完成（或处理失败），暂时不能确认拜访日志。", status=409
            )
        draft = draft_visit_log(row, dict(row.visit_record))
        fields = {**draft["fields"], **clean_edits(edited or {})}
        try:
            apply_change(
                self.engine, self.crm, user_id=user.id, change={"op": "log_visit", "fields": fields},
                evidence_ids=[memo_id], key=confirm_key(memo_id),
            )  # fmt: skip
        except ValueError as exc:
            raise AppError("validation_error", str(exc)) from exc
        logger.info("memo %s visit log confirmed by user %s", memo_id, user.id)
        return self.to_json(self.row(memo_id))

    # -- the rep fixes the transcript ---------------------------------------------------------------
    def correct(self, user: User, memo_id: str, *, text: str | None = None,
                segments: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        """The uploader corrects the transcript (the whole ``text``, or ``segments`` by index); extraction,
        the draft visit log and the suggestions are made again from it. The text as heard is kept in the
        record (``transcript_as_heard``). Not once the visit log went to the CRM (409): the CRM has it."""
        row = self.row(memo_id)
        if row is None or row.user_id != user.id:
            raise AppError("not_found", f"录音纪要 {memo_id} 不存在。")
        failed_code = (row.error or {}).get("code") if row.status == "failed" else None
        if row.status != "done" and failed_code != "no_speech":
            raise AppError("conflict", "录音纪要尚未处理完成，暂时不能修改转写。", status=409)
        if outbox.get(self.engine, confirm_key(memo_id)) is not None:
            raise AppError(
                "conflict", "拜访日志已确认写入 CRM，不能再修改转写；请在 CRM 中修改该拜访记录。", status=409
            )
        new = _corrected_segments(list(row.segments or []), text=text, segments=segments)
        record = extract_visit(
            [_Seg(s["start"], s["end"], s["text"]) for s in new], recorded_at=parse_when(row.recorded_at),
            context=self.context_for(row.customer_id, row.user_id), llm=self.llm,
            embedder=optional(self._embedder, "embedder"),
        )  # fmt: skip
        old = dict(row.visit_record or {})
        visit = record.to_json()
        visit["transcription"] = old.get("transcription")
        visit["transcript_as_heard"] = old.get("transcript_as_heard", row.transcript or "")
        visit["corrected_by_rep"] = True
        self._set(memo_id, status="done", error=None, transcript="".join(s["text"] for s in new), segments=new,
                  visit_record=visit)  # fmt: skip
        logger.info("memo %s transcript corrected by user %s (%d segments)", memo_id, user.id, len(new))
        self.add_suggestions(memo_id, visit)
        return self.to_json(self.row(memo_id))

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


class _Seg:
    __slots__ = ("start", "end", "text")

    def __init__(self, start: float, end: float, text: str) -> None:
        self.start, self.end, self.text = start, end, text


MAX_TRANSCRIPT_CHARS = 20_000


def _corrected_segments(old: list[dict[str, Any]], *, text: str | None,
                        segments: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:  # fmt: skip
    """The transcript segments after the rep's correction; AppError 422 (Chinese) when it is unusable."""
    if (text is None) == (segments is None):
        raise AppError("validation_error", "请提供修改后的完整转写 text，或按序号修改的 segments（二选一）。")
    if text is not None:
        text = text.strip()
        if not text or len(text) > MAX_TRANSCRIPT_CHARS:
            raise AppError("validation_error", f"转写内容不能为空，且最多 {MAX_TRANSCRIPT_CHARS} 字。")
        end = float(old[-1]["end"]) if old else 0.0
        return [{"start": 0.0, "end": end, "text": text}]  # one span: the rep's text has no timestamps
    new = [dict(s) for s in old]
    for edit in segments or []:
        index, body = edit.get("index"), edit.get("text")
        if not isinstance(index, int) or not 0 <= index < len(new) or not isinstance(body, str):
            raise AppError(
                "validation_error", f"segments 中的序号或文字不合法：{index!r}（共 {len(new)} 段）。"
            )
        new[index]["text"] = body.strip()[:2000]
    new = [s for s in new if s["text"]]
    if not new:
        raise AppError("validation_error", "修改后的转写为空。")
    return new
