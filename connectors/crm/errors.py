"""What can go wrong when talking to a CRM, split by what the caller should do.

    CRMError
     ├── CRMUnavailable   retry later: timeouts, connection errors, 5xx, 429 (``retry_after`` seconds)
     └── CRMRejected      do not retry: the CRM refused the request; ``message`` is the CRM's own words
          └── CRMAuthError  the token is missing, expired or lacks a scope

The outbox retries ``CRMUnavailable`` with backoff and marks ``CRMRejected`` rows failed, telling the
rep why in Chinese (``user_message``).
"""

from __future__ import annotations


class CRMError(Exception):
    def __init__(
        self, message: str, *, crm: str = "", status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.crm = crm
        self.status = status
        self.code = code

    @property
    def user_message(self) -> str:
        return f"CRM 写入失败：{self.message}"


class CRMUnavailable(CRMError):
    """Retryable: the CRM is down, slow or rate-limiting. ``retry_after`` is the CRM's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after

    @property
    def user_message(self) -> str:
        return f"CRM 暂时不可用，稍后自动重试：{self.message}"


class CRMRejected(CRMError):
    """Permanent: the CRM refused the write (validation, missing record …). Retrying will not help."""

    @property
    def user_message(self) -> str:
        return f"CRM 拒绝了这次写入：{self.message}"


class CRMAuthError(CRMRejected):
    """Permanent until an operator fixes the token or its scopes."""

    @property
    def user_message(self) -> str:
        return f"CRM 认证失败，请管理员检查令牌及权限范围：{self.message}"
