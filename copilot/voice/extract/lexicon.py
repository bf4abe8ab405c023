"""Offline lexicons and clause splitting: transcript text → clauses; the regular expressions that tag
clauses as needs, objections (typed), commitments, sentiment and stage cues, and find names."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from copilot.voice.extract.record import SourceRef, Sources, _SegmentLike

# -- clauses ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Clause:
    text: str
    segment: int
    sentence: int  # clauses of one sentence share this number
    first_in_sentence: bool


_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
_CLAUSE_END = re.compile(r"(?<=[，,：:])")
_LEAD = re.compile(
    r"^(?:(?:下一步|接下来|后续|然后|另外|还有|同时|而且|并且|其实|就是|他说|她说|他们说|对方说|客户说|"
    r"原话是|反正|所以|但是|不过|可是|那个|这个|怎么说呢|就是说呢|就是说|说实话|那|嗯|呃|啊|好|对)[，,：:]?\s*)+"
)
# Spoken fillers inside a clause ("许总那个，怎么说呢，抱怨…"): dropped from the spans the record shows.
_FILLER = re.compile(r"(?<=[\u4e00-\u9fff])(?:那个|怎么说呢|就是说呢)(?=[，,])")
# A cue that is said not to have happened ("没再提接口的事", "没提别的厂家") is not an objection.
_NEGATED_CUE = re.compile(r"没(?:再|有)?(?:提|说|问|聊|谈)|不是问题|没问题")
# A clause that only goes on with the comparison begun before it ("…也来报价了，比我们便宜一些").
_COMPARISON_TAIL = re.compile(
    r"^(?:说|而且|并且|还|也|现在|据说|听说)?(?:比我们|比咱们|价格比|报价比|便宜|低了?|高了?|送|给了|免费)"
)


def _clauses(segments: Sequence[_SegmentLike]) -> list[_Clause]:
    out: list[_Clause] = []
    sentence = 0
    for i, seg in enumerate(segments):
        for sent in _SENTENCE_END.split(seg.text):
            parts = [p.strip() for p in _CLAUSE_END.split(sent) if p.strip(" ，,：:。！？；!?;")]
            for j, part in enumerate(parts):
                out.append(_Clause(part.strip(), i, sentence, j == 0))
            if parts:
                sentence += 1
    return out


def _clean(text: str) -> str:
    text = _FILLER.sub("", text).strip(" ，,：:。！？；!?;、")
    return _LEAD.sub("", text).strip(" ，,：:。！？；!?;、")


def _ref(segments: Sequence[_SegmentLike], *indexes: int) -> Sources:
    return tuple(SourceRef(i, float(segments[i].start), float(segments[i].end)) for i in sorted(set(indexes)))


# -- lexicons (offline) ------------------------------------------------------------------------------

_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤古欧"
)
SURNAMES = frozenset(_SURNAMES)  # common Chinese surnames (for 「王总」-style references elsewhere)
_TITLES = r"(?:总经理|副总|总监|总工|总|经理|部长|主任|科长|主管|厂长|院长|老板|董事长|董|工|处长|局长|书记|老师|博士|助理|专员)"
_TITLED = re.compile(rf"([\u4e00-\u9fff])({_TITLES})")

_OBJECTION_PATTERNS: dict[str, re.Pattern[str]] = {
    "预算": re.compile(
        r"预算.{0,4}(?:不够|不足|有限|紧|用完|花完|卡|砍|冻结|只有|只批|批不|超|不在|没有)|没(?:有)?预算|没钱|不批钱|资金(?:紧|压力)|"
        r"钱不够|经费|批不下|控制成本|成本压力|利润压力|财务(?:那边)?(?:卡|紧|不同意|不批)|明年(?:的)?预算"
    ),
    "价格": re.compile(
        r"太贵|贵了|偏贵|有点贵|嫌贵|嫌[^，。；]{0,8}贵|比较贵|价格(?:偏)?高|报价(?:偏)?高|压价|降价|涨价|多花钱|便宜|打折|折扣|[0-9一二三四五六七八九]{1,2}折|"
        r"让利|优惠|砍价|价格(?:下不来|接受不了|没优势|不合适)|贵(?:这么多|不少|一倍|太多)|个点|划不来|不划算|"
        r"比(?:我们|咱们)(?:便宜|低|少)|能不能(?:免费|不涨|便宜|少收)|(?:价格|价钱|费用|续费)[^，。；]{0,6}(?:不涨|别涨|涨)"
    ),
    "决策流程": re.compile(
        r"审批|董事会|上会|招标|比价|走流程|流程(?:很|太|比较)?(?:长|慢|复杂|多)|说了不算|做不了主|过不了|"
        r"要.{0,6}(?:点头|拍板|签字|同意|来定|定夺)|(?:老板|领导|集团|总部)(?:来|去)?(?:定|拍板|决定)"
    ),
    "服务": re.compile(
        r"售后(?:差|不好|慢|跟不上)|响应(?:慢|不及时)|服务(?:不好|差|跟不上|慢)|没人(?:管|维护|来)|找不到人|才有人来|本地(?:没有|有没有)人|"
        r"(?:第二天|隔天|几天|一周|半天)[^，。；]{0,4}才(?:到|来)|没做到"
    ),
    "交付": re.compile(
        r"交期|交货|工期|到货|来不及|赶不上|跟不上|上线时间|停线时间|停产时间|周期(?:太|很|比较)?长|排期|延期|等不了|"
        r"时间(?:太|很)?长|多久能|什么时候能(?:上线|装|交)|装不完|安装(?:要|得)?(?:多久|太久)|实施周期"
    ),
    "技术": re.compile(
        r"兼容|对接|接口|不稳定|稳定性|误报|漏报|精度|数据安全|数据(?:会不会|能不能|不能|是否|要不要)?出|断网|掉线|离线|私有化|"
        r"本地部署|布线|二次开发|集成|打通|信号|覆盖不了|耗电|防爆|等保"
    ),
}
# Words that only make an objection together with a concern marker (checked in this order).
_WEAK_TYPES: dict[str, re.Pattern[str]] = {
    "价格": re.compile(r"价格|报价|费用|价钱|多少钱|订阅|买断|年费|收费|[0-9一二三四五六七八九十几]+万"),
    "预算": re.compile(r"预算|利润|投入|花钱"),
    "决策流程": re.compile(r"集团|总部|采购中心|评审|决策|拍板|签字|盖章|立项|老板|领导"),
    "服务": re.compile(r"服务|售后|维保|质保|保修|维护|培训|驻场|上门|响应"),
    "交付": re.compile(r"交付|停线|停机|停产|施工|安装|进度|上线"),
    "技术": re.compile(
        r"功能|系统|数据|设备|传感器|网关|平台|软件|界面|App|APP|app|操作|好用|易用|老设备|改造|电池|认证"
    ),
}
_CONCERN = re.compile(
    r"担心|顾虑|不放心|怕|质疑|不认可|不同意|不满意|不满|抱怨|吐槽|犹豫|反对|不确定|没法|不行|有意见|嫌|卡在|卡住|谨慎|"
    r"问题是|麻烦|太|不够|不了|(?<!能)不能|不想|没必要|不划算|划不来|接受不了|不接受|不太接受|要求|坚持|至少|凭什么|差不多|没底|疑问|纠结|"
    r"压力|看不懂|不会用|没人用"
)
# A concern with no recognisable topic is still an objection: typed 其他.
_STRONG_CONCERN = re.compile(
    r"担心|顾虑|不放心|质疑|不认可|不同意|不满意|不满|有意见|接受不了|不接受|不太接受|犹豫|反对|不会用|没人用|看不懂"
)
_NEED = re.compile(
    r"希望|(?<![我思理回不])想(?!法|不到|起来|了想|通|必)|需要|关心|关注|打算|计划|(?<!再)考虑(?!一下|考虑)|痛点|头疼|最怕|"
    r"要的是|要求(?:就)?是|要求有|"
    r"看重|在意的(?:其实|就)?是|最好(?:是|能)|主要看|一定要|"
    r"期望|目标是|要做|要上|要把|要新开|要新增|要扩|准备上|诉求|要求(?!.*不能).*(?:能|可以|支持|提前|实时|自动)|"
    r"能不能|能否|可不可以|有没有办法"
)
# "X 最大的痛点是 …" / "她比较头疼的是 …": the need is what follows the cue.
_NEED_LEAD = re.compile(
    r"^.{0,12}?(?:最大的|比较|最|主要)?(?:痛点|头疼的|关心的|担心的|希望的|在意的|看重的|需求|诉求|想法)(?:其实|就)?是|"
    r"^.{0,12}?主要看|^.{0,12}?(?:要的是|要求(?:就)?是)"
)
# "关心数据是不是存在国内": a question about a risk is a concern, not a need.
_CONCERN_QUESTION = re.compile(r"是不是|会不会|要不要|安不安全|靠不靠谱|稳不稳定")
# The rep speaking about what *they* said or did is not the customer's need or objection.
_REP_TURN = re.compile(
    r"^(?:我|我们|我这边)(?:跟[^，,]{0,6})?(?:也)?(?:解释|说|讲|回|答|告诉|介绍|演示|强调|表示|建议|提|给他|给她|给他们)|"
    r"^(?:我|我们)?(?:觉得|感觉|认为|判断|估计|看)(?!看)"
)
_COMMIT_CUE = re.compile(
    r"下一步|接下来|后续|回去|回来|我(?:这周|下周|明天|今天|会|要|得|来|去|先|负责|尽快|马上|争取|准备|打算)|我们(?:会|要|得|来|负责|准备)|"
    r"(?<![违续合预])约(?:了|好)?|安排|答应|承诺|说好|定了|负责|之前|以前|前把|尽快|马上"
)
_ACTION = re.compile(
    r"发|提交|(?<![违续合预])约|安排|准备|整理|寄|演示|做|出|申请|跟进|联系|拜访|沟通|确认|报|给|带|请|过来|过去|开会|评审|试|测|签|"
    r"回访|上门|对接|汇报|推进|落实|走访|见|看|补|改|更新|打电话|组织|讨论|复盘|告诉|答复|回复|请示|问一下|问问|协调|查清|查一下|回个电话|去一趟|跑一趟"
)
_PAST = re.compile(r"已经|上次|去年|之前已|刚才|早就|以前(?:用|买|做)")
_FUTURE_SUBJECT_CUSTOMER = re.compile(
    r"^(?:他们|对方|客户|厂里|那边|他|她)(?:那边)?(?:会|说|答应|负责|要|得|准备|下周|明天|月底)"
)

_POSITIVE = re.compile(
    r"认可|满意|支持我们|很支持|挺支持|感兴趣|很有兴趣|积极|顺利|不错|很好|挺好|爽快|有戏|认同|愿意|同意(?!.{0,4}不)|"
    r"看好|很感谢|拍板了|签了|中标|拿下|好评|主动|推荐|期待|放心|信任|乐观|好消息|开心|热情|"
    r"(?<!不)(?<!不太)(?<!没法)(?:能|可以)接受|(?<!不)高兴|没说贵|站(?:在)?我们这边|启动了|一直正常|运行正常|立项了|批下来了|"
    r"要扩|想扩|追加|增购|复购|加单|挺顺|基本定了|终于定了|不是问题|也接进来|也加进来"
)
_NEGATIVE = re.compile(
    r"不满|抱怨|质疑|推不动|冷淡|拒绝|不同意|不认可|悬了|流失|丢了|丢单|生气|投诉|失望|没戏|不太想|不感兴趣|态度一般|"
    r"不耐烦|很强硬|强硬|不信任|麻烦了|悲观|凶|骂|难搞|卡住|卡在|没下文|不回|拖着|犹豫|输了|选了别家|"
    r"不高兴|没优势|推迟|不采购|意见很大|老是|不是刚需|不想再|掉得厉害|动作太慢"
)

_STAGE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "输单",
        re.compile(
            r"丢了|丢单|输了|没中标|落选|选了(?:别家|他们|友商|竞品)|决定用(?!我们)|不做了|放弃|黄了|没戏了|签给了"
        ),
    ),
    (
        "赢单",
        re.compile(
            r"签了|签约了|合同签|签下来|中标了|中标|拿下|成交|打款|下单了|盖章了|款到了|首付款|拍板了|终于定了|定下来用我们"
        ),
    ),
    (
        "商务谈判",
        re.compile(
            r"商务谈判|谈判|折扣|压价|砍价|谈价|合同条款|付款方式|付款条件|账期|特批|让利|最终价|价格谈|合同草稿|合同细节|法务|续约"
        ),
    ),
    (
        "线索",
        re.compile(
            r"新客户|新接触|初次(?:拜访|接触)|第一次(?:拜访|见面|去|接触|来)|初步接触|展会|朋友介绍|转介绍|(?:渠道|伙伴)[^，。]{0,4}介绍|介绍(?:过来|认识)|陌生拜访|刚认识|加了微信|留了联系方式"
        ),
    ),
    ("方案报价", re.compile(r"报价|方案|演示|POC|poc|试点|测算|TCO|tco|样机|试用|投标|标书|配置清单")),
    (
        "需求确认",
        re.compile(r"需求|调研|痛点|摸底|现场看|勘察|点位|梳理|了解一下|详细聊|访谈|盘点|看了一下|带我看"),
    ),
)
_COMPETITOR_CUES = (
    re.compile(
        r"(?:竞品|友商|竞争对手|对手|别家|另一家|另外一家|一家)(?:是|叫|有|那边|的)?(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)"
        r"(?=[，,。、的那也在给报他们和]|$)"
    ),
    re.compile(
        r"(?:跟|和|与)(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)(?:的|家的)?(?:方案|产品|系统|平台)?(?:比|相比|对比)"
    ),
    re.compile(
        r"(?:用的是|用了|选了|换成|在用)(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)(?:的|家的)(?:方案|产品|系统|平台)"
    ),
)
# A brand-like unknown name beside a price or a comparison ("博远医疗给他们的代理价比我们便宜", "云账通报价才…").
_BRAND_TAIL = re.compile(
    r"(?:医疗|科技|财务|软件|物联|智能|信息|网络|云|通|宝|达|康|影|森|电子|器械|系统|数据|股份|集团)$"
)
_BRAND_CUES = (
    re.compile(
        r"(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)(?:那边|家)?(?:给(?:他们|我们|我|你们)?的?|的)?"
        r"(?:[\u4e00-\u9fff]{0,4}?)(?:报价|代理价|价格|价钱)(?:才|只|比|也|更|低|便宜)"
    ),
    re.compile(r"(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)(?:的[\u4e00-\u9fff]{1,4})?比我们(?:便宜|低|少)"),
    re.compile(
        r"(?:是|用的是|签了|换成了?|还有|以及|和|、)(?P<name>[\u4e00-\u9fffA-Za-z]{2,6}?)(?:的|和|、|，|。|$)"
    ),
)
# An unknown brand-like name said where the sentence compares or prices ("有个叫优声科技的小厂报了个很低的价",
# "财捷云也来演示过了，价格比我们低一截"): the name starts after a word boundary and ends in a brand tail.
_BRAND_NAME = re.compile(
    r"(?:^|(?<=[，,。、：:\s])|(?<=一些|一家|叫做|名叫|还有|以及)|(?<=[了是跟和说叫给在用像找]))"
    r"(?P<name>[\u4e00-\u9fffA-Za-z]{1,4}?(?:医疗|科技|财务|软件|物联|智能|信息|网络|电子|器械|影像|云|通))"
    r"(?=[的那也给报已还都在说，,。、]|$)"
)
_PRICE_OR_COMPARISON = re.compile(
    r"报价|便宜|对比|比我们|比咱们|价格|代理价|返点|[0-9一二三四五六七八九]{1,2}折|送[一二三四五六七八九十几0-9]|免费|低一截|低价|低了"
)
_NOT_COMPANY = re.compile(
    r"^(?:的|他们|我们|你们|客户|人家|对方|厂里|集团|总部|这边|那边|公司|老板|采购|价格|报价|方案|产品|系统|一家|这家|那家|厂家|的话|"
    r"以前|之前|去年|现在|同行|隔壁|别人|上次|原来|早就|已经|都|也|还|就|才)"
)
