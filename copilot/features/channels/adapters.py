"""Settings → channel adapters (WeCom app, DingTalk robot, WeCom AI bot); the container calls these.

A channel that is not configured raises ``AppError`` 503 naming the variables to set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.channels.crypto import CryptoError, MessageCrypto
from copilot.errors import AppError

if TYPE_CHECKING:
    from connectors.channels.dingtalk import DingTalkChannel
    from connectors.channels.wecom import WeComChannel
    from connectors.channels.wecom_aibot import ResponseURLClient, WeComAIBot

WECOM_VARS = (
    ("corp_id", "COPILOT_WECOM_CORP_ID", "企业 ID"),
    ("agent_id", "COPILOT_WECOM_AGENT_ID", "应用 AgentId"),
    ("secret", "COPILOT_WECOM_SECRET", "应用 Secret"),
    ("token", "COPILOT_WECOM_TOKEN", "企业微信回调 Token"),
    ("aes_key", "COPILOT_WECOM_AES_KEY", "企业微信回调 EncodingAESKey"),
)
DINGTALK_VARS = (
    ("app_key", "COPILOT_DINGTALK_APP_KEY", "钉钉应用 AppKey"),
    ("app_secret", "COPILOT_DINGTALK_APP_SECRET", "钉钉应用 AppSecret"),
)
AIBOT_VARS = (
    ("aibot_token", "COPILOT_WECOM_AIBOT_TOKEN", "智能机器人回调 Token"),
    ("aibot_aes_key", "COPILOT_WECOM_AIBOT_AES_KEY", "智能机器人回调 EncodingAESKey"),
)
PUSH_MODES = ("late", "always", "off")


def _not_configured(detail: str) -> AppError:
    return AppError("channel_not_configured", detail, status=503)


def _require(section: Any, variables: tuple[tuple[str, str, str], ...], platform: str) -> None:
    missing = [f"{env}（{meaning}）" for attr, env, meaning in variables if not getattr(section, attr)]
    if missing:
        raise _not_configured(f"{platform}渠道未配置：请设置 {'、'.join(missing)}")


def wecom_channel(cfg: Any) -> WeComChannel:
    from connectors.channels.wecom import WeComChannel, WeComClient

    _require(cfg, WECOM_VARS, "企业微信")
    try:
        crypto = MessageCrypto(cfg.token or "", cfg.aes_key or "", cfg.corp_id or "")
    except CryptoError as error:
        raise _not_configured(f"COPILOT_WECOM_AES_KEY 无效：{error.message}") from None
    if not str(cfg.agent_id).isdigit():
        raise _not_configured("COPILOT_WECOM_AGENT_ID 应为数字（应用 AgentId）")
    client = WeComClient(
        base_url=cfg.api_base,
        corp_id=cfg.corp_id or "",
        secret=cfg.secret or "",
        agent_id=cfg.agent_id or "0",
    )
    return WeComChannel(crypto, client)


def dingtalk_channel(cfg: Any) -> DingTalkChannel:
    from connectors.channels.dingtalk import DingTalkChannel, DingTalkClient

    _require(cfg, DINGTALK_VARS, "钉钉")
    client = DingTalkClient(
        api_base=cfg.api_base,
        oapi_base=cfg.oapi_base,
        app_key=cfg.app_key or "",
        app_secret=cfg.app_secret or "",
        robot_code=cfg.robot_code,
    )
    return DingTalkChannel(client, app_secret=cfg.app_secret or "")


def aibot(cfg: Any) -> tuple[WeComAIBot, ResponseURLClient | None, str]:
    """(the bot, the response_url client or None, the push mode) of the WeCom AI bot settings."""
    from connectors.channels.wecom_aibot import ResponseURLClient, WeComAIBot

    missing = [f"{env}（{meaning}）" for attr, env, meaning in AIBOT_VARS if not getattr(cfg, attr)]
    if missing:
        raise _not_configured(f"企业微信智能机器人未配置：请设置 {'、'.join(missing)}")
    try:
        crypto = MessageCrypto(cfg.aibot_token, cfg.aibot_aes_key, "")
    except CryptoError as error:
        raise _not_configured(f"COPILOT_WECOM_AIBOT_AES_KEY 无效：{error.message}") from None
    push = (cfg.aibot_push or "late").strip().lower()
    if push not in PUSH_MODES:
        raise _not_configured(
            f"COPILOT_WECOM_AIBOT_PUSH='{cfg.aibot_push}' 不支持；可选：{', '.join(PUSH_MODES)}"
        )
    responder = None if push == "off" else ResponseURLClient(allowed_base=cfg.api_base)
    return WeComAIBot(crypto), responder, push
