"""What a rep's message asks for (DESIGN §5.7 intents), offline: Chinese cue patterns, in order.

The order matters: a pending clarification is answered first (「1」, 「第一个」), then confirmations and
dismissals (short replies), then CRM commands (a verb of change: 建任务/记一下/安排拜访/改阶段), then the
questions (next steps, a customer's status, sales knowledge), small talk, and what is out of scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from copilot.voice.extract.dates import chinese_number

INTENTS = (
    "ask_knowledge",
    "customer_status",
    "next_steps",
    "command",
    "confirm",
    "dismiss",
    "clarify_answer",
    "smalltalk",
    "out_of_scope",
)

_PUNCT = re.compile(r"[\s，。！？!?,.、~～…]+")
_NUMBERED = re.compile(
    r"^(确认|采纳|执行|忽略|不要|删掉)\s*第?\s*([0-9一二两三四五六七八九十]{1,3})\s*(条|个)?$"
)
_ORDINAL = re.compile(r"^(选)?第?\s*([0-9一二两三四五六七八九十]{1,2})\s*(个|家|项|条)?$")
_CONFIRM = re.compile(
    r"^(确认|确定|好的?|好吧|好啊|可以|行|行吧|没问题|就这样|对|是的?|嗯|ok|yes|同意|建吧|创建吧|写入吧|提交吧?|去吧|确认写入|"
    r"(好的?|可以|行|确认|对)[，,]?\s*(建|写|提交|记|加|安排|改|弄|办|执行|发|约)[吧了]?(吧)?|执行吧?|没错|就这么办|就这么定了?)$",
    re.I,
)
_DISMISS = re.compile(
    r"^(算了|取消|不用了?|不要了?|先不(用|要|建|写)?了?|别建了?|不了|放弃|撤销|no|不需要)(吧|了)?$", re.I
)
# With a change pending, a reply that starts by calling it off (「算了，我今天直接发」) dismisses it.
_DISMISS_LEAD = re.compile(r"^(算了|取消|不用了?|不要了?|先不(用|要)?|别建了?|放弃|撤销)")
_AMEND = re.compile(r"^(不对|不是|错了)?.{0,4}(改成|改为|换成|改到|推迟到|提前到|延到)")
_COMMAND = re.compile(
    r"(帮我|给我|麻烦|请)(约|排|安排|建|记|加|改|提醒|登记|补录|预约|订)"
    r"|(排|约)(个|一下|一个)?(拜访|回访|上门|面谈|见面|会)|(下周|周[一二三四五六日天]|明天|后天|[0-9一二三四五六七八九十]+号).{0,4}(上门|去现场|拜访|回访)"
    r"|(建|创建|新建|加|添加|设|设置|记|记录|登记|补录|安排|约|预约|改|更新|推进|调整|提醒)"
    r"[个一下条次]{0,2}"
    r"(任务|待办|提醒|跟进任务|拜访|回访|电话|备注|笔记|记录|纪要|阶段|商机阶段|日程|会议|面谈)"
    r"|提醒我|记一下|记下来|帮我记|记个|(改|推进|推|更新|调|挪)(成|到|为)?[「“\"]?(线索|需求确认|方案报价|商务谈判|赢单|输单)"
    r"|^安排.{0,8}(下下?周|周[一二三四五六日天]|明天|后天|[0-9一二三四五六七八九十]+[号日]).{0,12}(去|拜访|上门|见|演示|回访)"
    r"|(把|将)?(所有|全部)?商机.{0,6}(改|设|标)(为|成)"
)
_NEXT = re.compile(
    r"下一步|(怎么|如何)跟进|(怎么|如何)跟$|跟进(建议|计划|策略)|该做什么|怎么推进|如何推进|接下来|该怎么办|该怎么做|建议.{0,4}(做|跟)|要做什么|做点什么"
)
_STATUS = re.compile(
    r"怎么样|情况|进展|近况|状态|现状|(聊|谈)到哪|到哪一步|什么阶段|哪个阶段|最近.{0,4}(如何|怎样|动态)|有什么(动态|变化)|介绍一下|简报|概况|跟到哪"
)
# A question about what the CRM knows of a customer (named, through a contact, or 他们).
_CRM_FACT = re.compile(
    r"拜访|见的谁|见了谁|任务|待办|逾期|商机|阶段|报价|采购|订单|竞品|在跟.{0,4}比|评审|反馈|联系人|谁负责|"
    r"决策人|谈什么|在谈|说了什么|怎么说的?$|最近.{0,4}说|约上了|多久|什么时候|有没有|是不是|还没完成|完成了|到哪|"
    r"输了|赢了|丢单|为什么(输|丢|选|没)|选了|投用|上线|签约|成交"
)
# A question rather than a request (「帮我…好吗」 still asks for the change: it has 帮我).
_QUESTION = re.compile(r"^(?!.*(帮我|给我|麻烦|请)).*(多久|多少|几天|什么时候|吗|呢|？|\?|没有?$)")
_THANKS = re.compile(r"辛苦|谢谢|多谢|感谢")
_SMALLTALK = re.compile(
    r"^((你好|您好|hi|hello|嗨|哈喽|在吗|在不在|早|早上好|下午好|晚上好|谢谢你?|多谢|感谢|辛苦了?|好的|拜拜|再见|"
    r"你是谁|你能做什么|你会什么)(啊|呀|呢|哈|了|啦)?)+$",
    re.I,
)
_OUT_OF_SCOPE = re.compile(
    r"天气|气温|下雨|股票|股价|彩票|写.{0,6}诗|作诗|诗歌|讲个?笑话|笑话|电影|小说|菜谱|做饭|足球|篮球|游戏|星座|算命|翻译|"
    r"旅游|旅行|火车票|高铁|动车|车票|打车|机票|酒店|房价|减肥|医院挂号|数学题|代码|编程|爬虫|餐厅|好吃|吃什么|外卖|八卦|明星"
)
_HOWTO = re.compile(
    r"怎么回|如何回|(?<!最近)怎么说|怎么答|话术|政策|规定|规则|要求|流程|产品|功能|案例|资料|白皮书|"
    r"能.{0,6}(多久|多少|几)|是否支持|支持.{0,6}吗|方案怎么样|价格怎么样|效果怎么样"
)
_KNOWLEDGE = re.compile(
    r"怎么回|如何回|怎么说|怎么答|如何应对|怎么应对|怎么处理|话术|报价|价格|多少钱|折扣|优惠|政策|案例|竞品|对比|产品|功能|参数|"
    r"方案|异议|嫌贵|太贵|预算|交付|交期|售后|维保|合同|付款|账期|发票|试用|部署|对接|集成|安全|资质|标准|流程|规则|规定|"
    r"SLA|TCO|ROI|区别|优势|为什么|是什么|有哪些|能不能|可以吗|吗[？?]?$|怎么|如何|\?|？"
)

# A question about how things are done in general (the rules, the policy, what we usually do), even with
# a customer in focus: 「按制度这种情况要怎么处理？」「C类医院多久要拜访一次？」「跟用友对接一般要多久？」.
_GENERAL = re.compile(
    r"按(公司|现行|最新)?的?(制度|政策|规定|规则|手册|流程|要求|标准)|一般|通常|正常来说|原则上|"
    r"(^|[^\w])[A-Da-d]类|这种情况|这类(客户|情况|问题)|多久(要|得|必须|需要|能)|要多久|多长时间|"
    r"多少天(没|未|内|以上|之内)?.{0,8}(就|要|得|必须|需要)|超过多少|怎么报价|如何报价|单价|多少钱|"
    r"能不能|能否|是否支持|支持.{0,10}吗|怎么处理|如何处理|怎么回|如何回|怎么应对|如何应对|话术|"
    r"交期|工期|供货周期|实施周期"
)
# A question about where this customer's things stand (named, 他们, or someone we cannot see): ending
# 「批下来没有？」「发了没？」「派售前了吗？」, or 「上次聊了什么？」「用的是什么ERP？」「停了多少天了？」「谁拍板？」
_PERFECTIVE_END = re.compile(r"(了|过)(吗|没有?|么)$|没有$")
_STATE_CHECK = re.compile(
    r"上次|上一次|最近一次|聊了什么|谈了什么|说了什么|见了谁|见的谁|"
    r"(用|买|选)的是?(什么|哪家|哪个|谁家)|在用(什么|哪家)|(停|卡|拖)了多少天|多少天了|"
    r"谁(拍板|说了算|负责|决策|签字)|决策人|什么时候(开|签|到期|上线|验收|付|回)|到期(了|没)|回款了|回了没|"
    r"输给|输在|丢给|哪天(结束|到期|开始|开标|上线)|几号(结束|到期|开标)|怎么掉|掉(了)?这么多"
)


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    number: int | None = None  # 「确认 2」 → 2; 「第一个」 → 1
    verb: str | None = None  # confirm | dismiss, for a numbered suggestion


def bare(text: str) -> str:
    return _PUNCT.sub("", text or "").strip()


def classify(message: str, *, clarifying: bool = False, pending: bool = False, named: bool = False,
             just_a_name: bool = False, about_customer: bool = False) -> Intent:  # fmt: skip
    """The intent of ``message``. ``clarifying``: options were offered last turn; ``pending``: a
    proposed change waits for confirmation; ``named``: the message names a visible customer (or a
    contact); ``just_a_name``: it is hardly more than that name; ``about_customer``: it refers to the
    customer in focus (他们, 她) or starts as a follow-up."""
    text = bare(message)
    low = text.lower()
    numbered = _NUMBERED.match(text)
    if numbered:
        verb = "dismiss" if numbered.group(1) in ("忽略", "不要", "删掉") else "confirm"
        return Intent(verb, _number(numbered.group(2)), verb)
    if clarifying:
        ordinal = _ORDINAL.match(text)
        if ordinal:
            return Intent("clarify_answer", _number(ordinal.group(2)))
        if just_a_name:
            return Intent("clarify_answer")
    if _CONFIRM.match(low) or (pending and re.match(r"^(好|可以|行|确认|对)", text) and len(text) <= 8):
        return Intent("confirm")
    if text.endswith(("确认", "确认吧", "确认执行")) and len(text) <= 16 and not _COMMAND.search(text):
        return Intent("confirm")  # 「我是经理，我授权，确认」: still just a confirmation
    if _DISMISS.match(low) or (pending and _DISMISS_LEAD.match(text)):
        return Intent("dismiss")
    if pending and _AMEND.search(text):
        return Intent("command", verb="amend")  # 「不对，改成下周三」: the pending change, changed
    if _OUT_OF_SCOPE.search(text) and not named:
        return Intent("out_of_scope")
    if _COMMAND.search(text) and not (
        _QUESTION.search(text) and (_GENERAL.search(text) or _PERFECTIVE_END.search(text))
    ):  # 「续约拜访约了没有？」 asks, too
        return Intent("command")  # not 「合同到期前多久要安排续约拜访？」: a question about the rules
    if _SMALLTALK.match(low) or (len(text) <= 10 and _THANKS.search(text) and not _QUESTION.search(text)):
        return Intent("smalltalk")  # 「周五了，辛苦辛苦」
    if _NEXT.search(text):
        return Intent("next_steps")
    if (named or about_customer) and (
        _PERFECTIVE_END.search(text) or (_STATE_CHECK.search(text) and not _GENERAL.search(text))
    ):
        return Intent("customer_status")  # 「恒远这个商机多少钱，配顾问了没有？」: the end decides
    if _GENERAL.search(text):
        return Intent("ask_knowledge")
    if _STATUS.search(text) and not _HOWTO.search(text):
        return Intent("customer_status")  # about a customer: named, carried over, or asked for
    if (named or about_customer) and _CRM_FACT.search(text) and not _HOWTO.search(text):
        return Intent("customer_status")
    if named and len(text) <= 12 and not _KNOWLEDGE.search(text):
        return Intent("customer_status")  # just a customer's name: how are they doing
    if _KNOWLEDGE.search(text) or named:
        return Intent("ask_knowledge")
    if len(text) <= 4:
        return Intent("smalltalk")
    return Intent("ask_knowledge")


def _number(token: str) -> int | None:
    return int(token) if token.isdigit() else chinese_number(token)
