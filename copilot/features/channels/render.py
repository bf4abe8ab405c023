"""What the channels say: Chinese texts, answers with their sources, visit summaries, suggestion cards."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import quote

from connectors.channels.base import Channel, ChannelError, InboundMessage, OutboundReply
from copilot.domain import ChatAnswer
from copilot.features.memos.draft import record_lines

logger = logging.getLogger(__name__)

PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}
UNBOUND = "您好！您的{platform}账号还没有绑定销售副驾用户，请联系管理员为您绑定账号后再使用。"
VOICE_RECEIVED = "已收到语音，正在转写…"
UNSUPPORTED = "暂不支持这种类型的消息，请发送文字或语音。"
MEDIA_TOO_LARGE = "语音文件过大，无法处理，请发送较短的语音。"
FAILED = "抱歉，处理您的消息时出错了，请稍后再试。"
MEMO_FAILED = "语音纪要处理失败：{message}"
ASK_CUSTOMER = "未能从录音中识别出您负责的客户，纪要（{memo_id}）已保存但未关联客户。请问这是哪位客户的拜访？"
NO_SUGGESTIONS = "暂无新的跟进建议。"
NO_SUCH_SUGGESTION = "没有找到第 {n} 条建议，请按最近一次发给您的建议编号回复。"
APPLIED = "已采纳：{title}，已写入 CRM。"
ALREADY_APPLIED = "该建议已采纳，无需重复操作：{title}"
DISMISSED = "已忽略：{title}"


def send(channel: Channel, message: InboundMessage, text: str) -> None:
    channel.send(message, OutboundReply(text))


def try_send(channel: Channel, message: InboundMessage, text: str) -> None:
    """Send, logging (not raising) a platform failure: used on paths that are already failing."""
    try:
        send(channel, message, text)
    except ChannelError as exc:
        logger.warning("%s reply to message %s not delivered: %s", message.channel, message.msg_id, exc.code)


def format_answer(answer: ChatAnswer) -> str:
    """The chat answer as channel text; citation labels the text does not show yet are listed under 依据."""
    text = answer.answer.strip()
    if answer.note:
        text = f"（{answer.note}）\n{text}"
    missing = [c.label for c in answer.citations if c.label and c.label not in text]
    if missing:
        text += "\n\n依据：\n" + "\n".join(f"[{i}] {label}" for i, label in enumerate(missing, start=1))
    return text


def clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def tap_to_send(text: str) -> str:
    """A DingTalk card button link that, tapped, sends ``text`` into the chat as the user."""
    return "dtmd://dingtalkclient/sendMessage?content=" + quote(text)


def suggestion_card(s: dict[str, Any]) -> dict[str, Any]:
    """A WeCom button_interaction template card for one suggestion; button keys carry its id."""
    sid = s["id"]
    return {
        "card_type": "button_interaction",
        "source": {"desc": "销售副驾"},
        "main_title": {"title": clip(s.get("title") or "跟进建议", 26), "desc": "跟进建议"},
        "sub_title_text": clip(s.get("rationale") or "", 110),
        "task_id": f"{sid}-{secrets.token_hex(4)}",
        "button_list": [
            {"text": "采纳", "style": 1, "key": f"apply:{sid}"},
            {"text": "忽略", "style": 2, "key": f"dismiss:{sid}"},
        ],
    }


def numbered_suggestions(shown: list[dict[str, Any]]) -> str:
    lines = ["跟进建议："]
    for i, s in enumerate(shown, start=1):
        lines.append(f"{i}. {s.get('title', '')}")
        if s.get("rationale"):
            lines.append(f"   {clip(s['rationale'], 120)}")
    lines.append("回复“确认 N”采纳，回复“忽略 N”忽略。")
    return "\n".join(lines)


def summarize(visit: dict[str, Any], transcript: str | None, *, customer_name: str | None = None,
              draft: dict[str, Any] | None = None) -> str:  # fmt: skip
    """The visit record as a short Chinese text for the rep."""
    lines = ["拜访纪要" + (f"（{customer_name}）" if customer_name else "") + "："]
    if transcript:
        lines.append(f"转写：{clip(transcript, 300)}")
    contacts = [c.get("name") or c.get("mentioned_as") for c in visit.get("contacts") or []]
    if contacts := [c for c in contacts if c]:
        lines.append("联系人：" + "、".join(contacts))
    lines += record_lines(visit)
    if (visit.get("sentiment") or {}).get("value"):
        lines.append(f"客户态度：{visit['sentiment']['value']}")
    if draft:
        lines.append(
            "已生成拜访记录草稿，可在销售副驾中确认写入 CRM。转写有误时回复「更正：正确的内容」（名称已按 CRM 自动校正）。"
        )
    return "\n".join(lines)
