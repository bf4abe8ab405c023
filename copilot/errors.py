"""Stable error codes (code, HTTP status, 中文 message) and the one handler that renders them.

Every error leaves the API as ``{"error": code, "detail": 中文, "request_id"}``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

if TYPE_CHECKING:  # FastAPI is imported by the handlers' installer: the CLI's errors do not need it
    from fastapi import FastAPI, Request

from connectors.crm.errors import CRMAuthError, CRMError, CRMUnavailable

logger = logging.getLogger(__name__)

# code -> (HTTP status, default Chinese message)
CATALOGUE: dict[str, tuple[int, str]] = {
    "unauthenticated": (401, "未登录或凭证无效，请提供有效的 Bearer 令牌或重新登录。"),
    "forbidden": (403, "无权访问该资源。"),
    "not_found": (404, "资源不存在。"),
    "customer_not_found": (404, "客户不存在。"),
    "user_not_found": (404, "用户不存在。"),
    "bad_request": (400, "请求体无法解析，请检查格式与编码（JSON 须为 UTF-8）。"),
    "validation_error": (422, "请求参数不合法。"),
    "invalid_value": (422, "请求中有数据库无法处理的值（如 \\u0000 字符、超出范围的数字），请修改后重试。"),
    "bad_import_file": (422, "导入文件无法解析。"),
    "payload_too_large": (413, "上传文件过大。"),
    "unsupported_media": (415, "不支持的文件格式。"),
    "rate_limited": (429, "请求过于频繁，请稍后再试。"),
    "csrf_failed": (403, "请求来源校验失败，请刷新页面后重试。"),
    "upload_quota_exceeded": (429, "今日上传量已达上限，请明天再试或联系管理员。"),
    "llm_unavailable": (503, "大模型服务暂不可用，已改用离线模式。"),
    "db_unavailable": (503, "数据库暂不可用，请稍后重试。"),
    "model_unavailable": (503, "本地模型不可用。"),
    "config_error": (503, "服务配置有误，请管理员检查环境变量。"),
    "internal_error": (500, "服务器内部错误，请稍后重试。"),
    "jobs_unavailable": (503, "任务队列（Redis）暂不可用，请稍后重试。"),
    "crm_unavailable": (503, "CRM 暂时不可用，请稍后重试。"),
    "crm_rejected": (502, "CRM 拒绝了该请求。"),
    "crm_auth_error": (502, "CRM 认证失败，请管理员检查 CRM 令牌及权限范围。"),
}


class AppError(Exception):
    """An error the caller can act on; ``detail`` is shown to users in Chinese."""

    def __init__(self, code: str, detail: str | None = None, *, status: int | None = None) -> None:
        default_status, default_detail = CATALOGUE.get(code, (400, "请求无法处理。"))
        self.code = code
        self.status = status or default_status
        self.detail = detail or default_detail
        super().__init__(f"{code}: {self.detail}")


class ConfigError(AppError):
    """A setting is missing or wrong; the message (Chinese) names the variable to fix."""

    def __init__(self, detail: str) -> None:
        super().__init__("config_error", detail)


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.state.request_id = uuid.uuid4().hex[:16]
    return rid


def _body(code: str, detail: str, request: Request) -> dict[str, str]:
    return {"error": code, "detail": detail, "request_id": request_id(request)}


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "稳定的错误码，如 validation_error"},
        "detail": {"type": "string", "description": "中文说明：调用方应当怎么做"},
        "request_id": {"type": "string", "description": "与响应头 x-request-id 相同"},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}  # fmt: skip


def document_errors(app: FastAPI) -> None:
    """Say in the OpenAPI what the handlers below really send: every 422 (FastAPI's default documents
    its own list-shaped body) and every other 4xx/5xx of ``/api/*`` is ``{"error","detail","request_id"}``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = _error_response("请求参数不合法")
                if path.startswith("/api/"):
                    responses.setdefault(
                        "4XX", _error_response("请求错误（401 未认证、403 无权限、404 不存在等）")
                    )
                    responses.setdefault("5XX", _error_response("服务端错误或依赖不可用"))
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    if any(e.get("type") == "json_invalid" for e in errors):
        return "请求体不是合法的 JSON，请检查格式与编码（UTF-8）。"
    fields = "、".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in errors[:5])
    return f"请求参数不合法：{fields}" if fields else CATALOGUE["validation_error"][1]


def db_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (PEP 249 OperationalError,
    an invalidated connection, a pool that could not hand out a connection in time)."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    )


def install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    document_errors(app)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError):
        return JSONResponse(_body(exc.code, exc.detail, request), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return JSONResponse(
            _body("validation_error", _validation_detail(exc.errors()), request), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {
            400: "bad_request",  # e.g. a body FastAPI could not parse (nested too deep, wrong charset)
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        detail = (
            CATALOGUE.get(code, (0, "请求无法处理。"))[1]
            if code != "method_not_allowed"
            else "不支持该请求方法。"
        )
        return JSONResponse(_body(code, detail, request), status_code=exc.status_code)

    @app.exception_handler(DataError)
    async def _bad_data(request: Request, exc: DataError):
        # The database refused a value the request carried (PostgreSQL: a NUL character in text, a
        # number out of range): the caller's input, not an outage. The transaction was rolled back.
        logger.warning(
            "database refused a value: %s (request %s)", type(exc.orig).__name__, request_id(request)
        )
        return JSONResponse(_body("invalid_value", CATALOGUE["invalid_value"][1], request), status_code=422)

    @app.exception_handler(CRMError)
    async def _crm(request: Request, exc: CRMError):
        # A read from the CRM failed (writes go through the outbox and do not raise here).
        if isinstance(exc, CRMUnavailable):
            code = "crm_unavailable"
        else:
            code = "crm_auth_error" if isinstance(exc, CRMAuthError) else "crm_rejected"
        status, detail = CATALOGUE[code]
        logger.warning("%s from %s (status %s, request %s)", code, exc.crm, exc.status, request_id(request))
        response = JSONResponse(_body(code, detail, request), status_code=status)
        if isinstance(exc, CRMUnavailable) and exc.retry_after:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Log the type and request id only: messages may carry customer data.
        logger.error("unhandled %s (request %s)", type(exc).__name__, request_id(request), exc_info=exc)
        return JSONResponse(_body("internal_error", CATALOGUE["internal_error"][1], request), status_code=500)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _db(request: Request, exc: Exception):
        # The database is down or unreachable: 503, retry later (the pool reconnects by itself).
        # Other database errors (integrity, programming) stay internal errors.
        if not db_unavailable(exc):
            return await _unexpected(request, exc)
        logger.warning("database unavailable: %s (request %s)", type(exc).__name__, request_id(request))
        status, detail = CATALOGUE["db_unavailable"]
        return JSONResponse(
            _body("db_unavailable", detail, request), status_code=status, headers={"Retry-After": "5"}
        )
