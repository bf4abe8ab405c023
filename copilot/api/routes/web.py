"""Web login (server-side session cookie) and the web chat page.

    GET  /login?code=lc_…   a one-time login link (`copilot users login-link USER`, `copilot run`)
    POST /login             token=cpt_… pasted on the login page
    POST /logout            csrf_token=… (the form in every page's header)

A login opens a server-side session bound to the token behind it (identity/sessions.py); failed
logins count against the client address (COPILOT_RATE_LIMIT_LOGIN) and past the limit the page
answers 429 with ``Retry-After``. An API token in the URL (the old ``/login?token=``) is refused:
links must not carry credentials that outlive them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from copilot.api.auth import Credential, cached, session_cookie
from copilot.api.csrf import token_matches
from copilot.api.deps import ServicesDep, current_credential, current_user_or_none
from copilot.domain import User
from copilot.identity.login_codes import token_id_of
from copilot.identity.sessions import COOKIE_NAME


def _csrf_context(request: Request) -> dict[str, Any]:
    """Every page gets the session's CSRF token (``<meta name="csrf-token">``, the logout form)."""
    _, credential = cached(request.scope)
    session = credential.session if credential is not None else None
    return {"csrf_token": session.csrf_token if session is not None else ""}


templates = Jinja2Templates(
    directory=str(Path(__file__).resolve().parents[2] / "web" / "templates"),
    context_processors=[_csrf_context],
)
router = APIRouter(include_in_schema=False)

MaybeUser = Annotated[User | None, Depends(current_user_or_none)]
MaybeCredential = Annotated[Credential | None, Depends(current_credential)]

BAD_TOKEN = "令牌无效或已吊销，请向管理员重新获取。"  # noqa: S105 - a message
BAD_CODE = (
    "登录链接无效、已使用或已过期（有效期 {minutes} 分钟，只能使用一次）。"
    "请运行 copilot users login-link 用户ID 获取新链接，或在下方粘贴令牌。"
)
TOKEN_IN_URL = (
    "登录链接不再携带访问令牌：请运行 copilot users login-link 用户ID 获取一次性登录链接，或在下方粘贴令牌。"  # noqa: S105 - a message
)
LOCKED = "登录失败次数过多，请 {seconds} 秒后再试。"


def _page(
    request: Request, error: str | None, status: int, headers: dict[str, str] | None = None
) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"error": error}, status_code=status, headers=headers
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _locked_out(request: Request) -> Response | None:
    retry = await request.app.state.rate_limits.test("login", _client(request))
    if retry is None:
        return None
    return _page(request, LOCKED.format(seconds=int(retry)), 429, {"Retry-After": str(int(retry))})


async def _failed(request: Request, error: str) -> Response:
    await request.app.state.rate_limits.hit("login", _client(request))
    return _page(request, error, 401)


def _start_session(request: Request, services, user_id: str, token_id: str) -> Response:
    store = services.web_sessions
    store.end(session_cookie(request.headers))  # a new login replaces the browser's old session
    cookie, _ = store.start(user_id, token_id)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE_NAME, cookie, max_age=services.settings.session_max_hours * 3600, path="/",
        httponly=True, samesite="lax", secure=services.settings.https,
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, services: ServicesDep, code: str | None = None, token: str | None = None
):
    if token is not None:
        return _page(request, TOKEN_IN_URL, 400)
    if code is None:
        return _page(request, None, 200)
    if (locked := await _locked_out(request)) is not None:
        return locked
    redeemed = await run_in_threadpool(services.login_codes.redeem, code)
    if redeemed is None:
        return await _failed(request, BAD_CODE.format(minutes=services.settings.login_code_minutes))
    return await run_in_threadpool(_start_session, request, services, *redeemed)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, services: ServicesDep, token: Annotated[str, Form(max_length=512)]):
    if (locked := await _locked_out(request)) is not None:
        return locked
    token = token.strip()
    user = await run_in_threadpool(services.users.authenticate, token)
    token_id = token_id_of(token)
    if user is None or token_id is None:
        return await _failed(request, BAD_TOKEN)
    return await run_in_threadpool(_start_session, request, services, user.id, token_id)


@router.post("/logout")
def logout(
    request: Request,
    services: ServicesDep,
    credential: MaybeCredential,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
):
    if credential is not None and credential.via == "cookie":
        if not token_matches(csrf_token or request.headers.get("x-csrf-token"), credential):
            return RedirectResponse("/", status_code=303)  # a forged logout changes nothing
        services.web_sessions.end(session_cookie(request.headers))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=services.settings.https
    )
    return response


@router.get("/", response_class=HTMLResponse)
def chat_page(request: Request, user: MaybeUser, services: ServicesDep):
    if user is None:
        return RedirectResponse("/login", status_code=303)
    from copilot.identity.access import customers_for

    customers = customers_for(user, crm=services.crm, users=services.users)
    return templates.TemplateResponse(request, "chat.html", {"user": user, "customers": customers})
