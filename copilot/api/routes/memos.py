"""Voice memos over HTTP (DESIGN §5.5): upload → 202 {"memo_id"}; read status, transcript, visit record;
the uploader confirms the draft CRM visit log (write-back, idempotent)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from copilot.api.deps import ServicesDep, UserDep
from copilot.errors import AppError

logger = logging.getLogger(__name__)
_CHUNK = 1024 * 1024


@asynccontextmanager
async def _resume_pending(app: FastAPI) -> AsyncIterator[None]:
    """A memo whose process died mid-transcription is picked up again when the server starts."""
    services = getattr(app.state, "services", None)
    if services is not None:
        try:
            await run_in_threadpool(services.memos.resume_pending)
        except Exception as exc:  # never block start-up on it
            logger.warning("resuming memos failed: %s", type(exc).__name__)
    yield


router = APIRouter(prefix="/api/memos", tags=["memos"], lifespan=_resume_pending)


def _too_large(limit: int) -> AppError:
    return AppError(
        "payload_too_large", f"文件过大：最大支持 {limit // (1024 * 1024)} MB，请压缩或分段上传。"
    )


@router.post("", status_code=202)
async def upload_memo(
    request: Request,
    user: UserDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="录音：amr silk m4a mp3 wav ogg webm flac")],
    customer_id: Annotated[str, Form(min_length=1, max_length=64)],
) -> JSONResponse:
    """上传一段拜访录音；转写与抽取在后台进行，用 GET /api/memos/{id} 查看结果。"""
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # multipart overhead
        raise _too_large(limit)
    data = bytearray()
    while chunk := await file.read(_CHUNK):
        data.extend(chunk)
        if len(data) > limit:
            raise _too_large(limit)
    pipeline = services.memos
    memo_id = await run_in_threadpool(pipeline.accept, user, customer_id, bytes(data))
    pipeline.enqueue(memo_id)
    return JSONResponse({"memo_id": memo_id}, status_code=202)


@router.get("/{memo_id}")
def get_memo(memo_id: str, user: UserDep, services: ServicesDep) -> dict:
    """录音纪要：状态、带时间戳的转写、拜访记录、CRM 拜访日志草稿与建议（上传人及其经理可见）。"""
    return services.memos.view(user, memo_id)


class CorrectionRequest(BaseModel):
    """The corrected transcript: the whole ``text``, or ``segments`` edited by index."""

    text: str | None = Field(default=None, max_length=20_000)
    segments: list[dict[str, Any]] | None = Field(default=None, max_length=500)


@router.patch("/{memo_id}")
def correct_memo(memo_id: str, body: CorrectionRequest, user: UserDep, services: ServicesDep) -> dict:
    """上传人修改转写（整段文字或按序号修改分段），之后重新生成拜访记录、拜访日志草稿与建议；CRM 只写入确认后的内容。"""
    return services.memos.correct(user, memo_id, text=body.text, segments=body.segments)


class ConfirmRequest(BaseModel):
    """Optional edits to the draft visit log: any of ``date`` (YYYY-MM-DD), ``type``, ``contacts``, ``notes``."""

    fields: dict[str, Any] = Field(default_factory=dict)


@router.post("/{memo_id}/confirm")
def confirm_memo(
    memo_id: str, user: UserDep, services: ServicesDep, body: ConfirmRequest | None = None
) -> dict:
    """确认（可先修改）录音生成的 CRM 拜访日志并写入 CRM；仅上传人可确认，重复确认只写一次。"""
    return services.memos.confirm(user, memo_id, (body or ConfirmRequest()).fields)
