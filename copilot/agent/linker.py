"""Which customer (or contact) a rep means: full names, short names, aliases, pinyin homophones and
one-character typos, and contacts by name or surname + title (王总, 刘部长, 王姐, 潘工). Chinese-first.

The linker only ever sees the entities it is given — the customers the user may see — so a customer
outside the user's scope can never be matched, confirmed or named. Pure; one linker for the app (chat,
memo transcripts).

    linker = EntityLinker([Entity("c_huaxing", "华星电子科技（苏州）有限公司", contacts=("周建国",))])
    linker.customers("华兴那边下一步怎么跟？")   # [Match("c_huaxing", "华兴", "homophone", 0.9)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

_BRACKETS = re.compile(r"[（(][^）)]*[）)]")
_LEGAL_TAIL = re.compile(r"(股份有限公司|有限责任公司|有限公司|集团公司|集团|公司|厂|连锁|分公司)+$")
# Trade words peeled off one at a time (华星电子科技 → 华星电子 → 华星).
_TRADE_TAIL = re.compile(
    r"(?:科技|电子|信息|技术|网络|软件|智能|实业|贸易|商贸|控股|物流|食品|医药|医疗|汽车|零部件|精密|模具|"
    r"五金|制品|便利店|超市|冷链|快运|口腔|连锁|生物|制药|器械|设备|工业|自动化|物联|数据|云)$"
)
# Places a company name often starts with: dropping them gives what reps say (宁波锦程 → 锦程).
_PLACES = [
    "北京",
    "上海",
    "天津",
    "重庆",
    "深圳",
    "广州",
    "杭州",
    "南京",
    "苏州",
    "宁波",
    "温州",
    "嘉兴",
    "佛山",
    "东莞",
    "珠海",
    "无锡",
    "常州",
    "合肥",
    "武汉",
    "成都",
    "西安",
    "青岛",
    "厦门",
    "福州",
    "长沙",
    "郑州",
    "济南",
    "大连",
    "沈阳",
    "昆明",
    "南宁",
    "贵阳",
    "江苏",
    "浙江",
    "广东",
    "山东",
    "河南",
    "河北",
    "湖北",
    "湖南",
    "四川",
    "福建",
    "安徽",
    "江西",
    "广西",
    "云南",
]
# Words that end a contact reference: surname + one of these (王总, 刘部长, 潘工, 王姐).
_TITLES = (
    "总经理",
    "总监",
    "部长",
    "经理",
    "主任",
    "主管",
    "科长",
    "厂长",
    "老板",
    "董事长",
    "总",
    "工",
    "姐",
    "哥",
    "老师",
    "院长",
    "馆长",
    "董",
    "处长",
    "局长",
    "校长",
    "所长",
    "行长",
    "书记",
    "教授",
    "医生",
    "护士长",
    "助理",
    "秘书",
    "专员",
    "会计",
)
_MIN_ALIAS = 2
# An institution's place head (北辰市第一人民医院, 滨江区中心医院, 东港县人民医院): reps drop or shorten it.
_PLACE_HEAD = re.compile(r"^[\u4e00-\u9fff]{2,3}?[省市县区州镇]")
# What follows a place head in many names, so it tells no customer apart (北辰市第一人民医院 → not 「第一」).
_GENERIC_PART = re.compile(
    r"^(第|人民|中心|市立|省立|区立|县立|附属|中医|医院|公司|集团|有限|股份|实验|职业)"
)
_THAT_ONE_AFTER = re.compile(r"(那家|那个|这家|这个|那边的)")
_THAT_ONE_BEFORE = re.compile(r"(那家|那个|这家|这个)([\u4e00-\u9fff]{2,6}?)(客户|公司|企业)")
# 「那个学院最近怎么样？」: the kind of organisation alone describes every customer of that kind
_THAT_KIND = re.compile(r"(?:那家|那个|这家|这个)(学院|职院|大学|学校|中学|小学|医院|集团|工厂|超市|教育局)")
_LEGAL_WORD = re.compile(r"[股份有限责任分公司]+")  # 「有限公司」, 「限公司」: every company's, nobody's
_NOT_DESCRIPTIVE = {"有限", "公司", "客户", "我们", "他们", "你们", "帮我", "给我"}


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()  # contact names ("周建国")


@dataclass(frozen=True, slots=True)
class Match:
    id: str
    surface: str  # the words of the message that named it
    via: str  # name | alias | homophone | typo | abbreviation | contact
    score: float


def short_forms(name: str) -> list[str]:
    """``华星电子科技（苏州）有限公司`` → [华星电子科技, 华星电子, 华星]: what reps call a company."""
    base = _LEGAL_TAIL.sub("", _BRACKETS.sub("", name or "").strip()).strip() or (name or "").strip()
    forms = [base]
    for place in _PLACES:
        if base.startswith(place) and len(base) - len(place) >= 2:
            forms.append(base[len(place) :])
    for form in list(forms):
        trimmed = form
        while True:
            nxt = _TRADE_TAIL.sub("", trimmed)
            if nxt == trimmed or len(nxt) < _MIN_ALIAS:
                break
            trimmed = nxt
            forms.append(trimmed)
        if len(trimmed) >= 3:  # 华星电子 → 华星, 鲜丰汇 → 鲜丰 (reps say the first two characters)
            forms.append(trimmed[:2])
    return [f for f in dict.fromkeys(forms) if len(f) >= _MIN_ALIAS and f not in _PLACES]


# How organisations' names end (what follows a short mention that names another one: 临江「职院」).
_ORG_END = re.compile(
    r"^.{0,2}?(职院|学院|大学|中学|小学|学校|职校|医院|一院|二院|三院|院|公司|集团|厂|局|中心|银行|超市)"
)


def _in_order(chars: str, name: str) -> bool:
    """Every character of ``chars`` appears in ``name``, in that order."""
    it = iter(name)
    return all(c in it for c in chars)


def core_name(name: str) -> str:
    """The name without brackets and legal form: what abbreviations are made from."""
    return _LEGAL_TAIL.sub("", _BRACKETS.sub("", name or "").strip()).strip() or (name or "").strip()


def part_after_place(name: str) -> str | None:
    """「北辰市妇幼保健院」 → 「妇幼」: the two characters after an institution's place head, when they are
    not words many such names share (第一, 人民, 中心 …). Reps call a customer by them (「妇幼那边」)."""
    core = core_name(name)
    head = _PLACE_HEAD.match(core)
    if head is None:
        return None
    rest = core[head.end() :]
    if len(rest) < 3 or _GENERIC_PART.match(rest) or not all(_is_han(c) for c in rest[:2]):
        return None
    return rest[:2]


@lru_cache(maxsize=4096)
def _pinyin(text: str) -> tuple[str, ...]:
    return tuple(lazy_pinyin(text, style=Style.NORMAL, errors="default"))


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


@dataclass
class _Form:
    entity: str
    text: str
    via: str
    pinyin: tuple[str, ...] = field(default_factory=tuple)


class EntityLinker:
    def __init__(self, entities: Iterable[Entity]) -> None:
        self.entities = {e.id: e for e in entities}
        self._forms: list[_Form] = []
        for e in self.entities.values():
            forms = [(e.name, "name"), *((f, "name") for f in short_forms(e.name)[1:] if f != e.name)]
            forms[1:1] = [(short_forms(e.name)[0], "name")] if short_forms(e.name) else []
            forms += [(a.strip(), "alias") for a in e.aliases if a and len(a.strip()) >= _MIN_ALIAS]
            for text, via in dict.fromkeys(forms):
                self._forms.append(_Form(e.id, text, via, _pinyin(text)))
        # 「妇幼」 for 北辰市妇幼保健院, only where no other customer's name would give the same part
        parts: dict[str, list[str]] = {}
        for e in self.entities.values():
            if (part := part_after_place(e.name)) is not None:
                parts.setdefault(part, []).append(e.id)
        for part, ids in parts.items():
            if len(ids) == 1 and not any(
                part in core_name(o.name) for o in self.entities.values() if o.id != ids[0]
            ):
                self._forms.append(_Form(ids[0], part, "name", _pinyin(part)))
        self._cores = {
            e.id: (core, tuple(_pinyin(c)[0] if _is_han(c) else c for c in core))
            for e in self.entities.values()
            if len(core := core_name(e.name)) >= 4
        }

    # -- customers -----------------------------------------------------------------------------
    def customers(self, text: str) -> list[Match]:
        """The customers ``text`` names, best first (one match per customer)."""
        best: dict[str, Match] = {}
        found = (*self._exact(text), *self._sound_alike(text), *self._abbreviated(text))
        for m in (m for m in found if not self._names_another(text, m)):
            if m.id not in best or m.score > best[m.id].score:
                best[m.id] = m
        # a longer, exact mention beats a fuzzy one that lies inside it (华星 inside 华星电子)
        return sorted(best.values(), key=lambda m: (-m.score, -len(m.surface)))

    def _exact(self, text: str) -> list[Match]:
        out = []
        for f in self._forms:
            if f.text in text:
                score = min(1.0, 0.7 + 0.06 * len(f.text)) if f.via == "name" else 0.95
                out.append(Match(f.entity, f.text, f.via, score))
        return out

    def _sound_alike(self, text: str) -> list[Match]:
        """Same pinyin (华兴 → 华星), or one different character in a name of 3+ characters."""
        han = [(i, ch) for i, ch in enumerate(text) if _is_han(ch)]
        if not han:
            return []
        out = []
        chars = "".join(ch for _i, ch in han)
        spell = _pinyin(chars)
        if len(spell) != len(chars):  # pypinyin merged something: compare per character instead
            spell = tuple(_pinyin(ch)[0] for ch in chars)
        for f in self._forms:
            n = len(f.text)
            if n < _MIN_ALIAS or len(f.pinyin) != n:
                continue
            for start in range(0, len(chars) - n + 1):
                window = chars[start : start + n]
                if window == f.text:
                    continue
                if spell[start : start + n] == f.pinyin:
                    out.append(Match(f.entity, window, "homophone", 0.85 + 0.02 * n))
                    break
                if n >= 3:
                    diff = sum(1 for a, b in zip(window, f.text, strict=True) if a != b)
                    if diff == 1 and window[0] == f.text[0]:
                        out.append(Match(f.entity, window, "typo", 0.6 + 0.02 * n))
                        break
        return out

    def _names_another(self, text: str, m: Match) -> bool:
        """「临江职院」 holds 临江 of 临江市滨湖区教育局, but names another institution: a short mention followed
        by more of a name that ends like an organisation (职院, 医院, 公司…) and is no abbreviation of
        this customer's name is not this customer."""
        if len(m.surface) > 3:
            return False
        at = text.find(m.surface)
        after = text[at + len(m.surface) : at + len(m.surface) + 4] if at >= 0 else ""
        end = _ORG_END.search(after)
        if end is None or not all(_is_han(c) for c in after[: end.end()]):
            return False
        name = _BRACKETS.sub("", self.entities[m.id].name)
        rest = name[name.find(m.surface[-1]) + 1 :] if m.surface[-1] in name else name
        return not _in_order(after[: end.end()], rest)

    def _abbreviated(self, text: str) -> list[Match]:
        """Abbreviations made the usual way: the name's first two characters (or their sound), then
        characters picked in order from the rest — 北辰一院 (北辰市第一人民医院), 东港县医院, 北陈妇幼 (北辰市
        妇幼保健院). What follows the head must end the name or hold two adjacent characters of it, so
        「北辰人」 is not taken for 北辰市第一人民医院."""
        chars = [(c, _pinyin(c)[0] if _is_han(c) else c) for c in text]
        out = []
        for cid, (core, sounds) in self._cores.items():
            for i in range(len(chars) - 2):
                if (chars[i][1], chars[i + 1][1]) != sounds[:2]:
                    continue
                k, j, picked = 2, i + 2, []
                while j < len(chars) and _is_han(chars[j][0]):
                    nxt = next((n for n in range(k, len(core)) if sounds[n] == chars[j][1]), None)
                    if nxt is None:
                        break
                    picked.append(nxt)
                    k, j = nxt + 1, j + 1
                adjacent = any(b == a + 1 for a, b in zip(picked, picked[1:], strict=False))
                if picked and (picked[-1] == len(core) - 1 or adjacent):
                    surface = text[i:j]
                    exact_head = text[i : i + 2] == core[:2]
                    score = (0.85 if exact_head else 0.84) + 0.02 * len(
                        surface
                    )  # over a 2-character homophone
                    out.append(Match(cid, surface, "abbreviation", min(score, 0.97)))
                    break
        return out

    # -- contacts --------------------------------------------------------------------------------
    def contacts(self, text: str) -> list[Match]:
        """Customers whose contact ``text`` names: 周建国, or surname + title (周总, 吴部长, 孙姐)."""
        out: dict[str, Match] = {}
        for e in self.entities.values():
            for name in e.contacts:
                name = name.strip()
                if not name:
                    continue
                if len(name) >= 2 and name in text:
                    out[e.id] = Match(e.id, name, "contact", 0.9)
                    continue
                surname = name[0]
                for title in _TITLES:
                    if f"{surname}{title}" in text and e.id not in out:
                        out[e.id] = Match(e.id, f"{surname}{title}", "contact", 0.7)
        return sorted(out.values(), key=lambda m: -m.score)

    def described(self, text: str) -> list[Match]:
        """「连锁那家客户」, 「那个物流客户」: a word of their names with 那家/那个 — every customer it fits."""
        found: dict[str, Match] = {}
        for m in _THAT_ONE_AFTER.finditer(text):  # X那家
            head = text[: m.start()]
            words = [head[-n:] for n in (4, 3, 2) if len(head) >= n and all(_is_han(c) for c in head[-n:])]
            self._described(words, found)
        for m in _THAT_KIND.finditer(text):  # 那个学院
            self._described([m.group(1)], found)
        for m in _THAT_ONE_BEFORE.finditer(text):  # 那个X客户, 那个做X的客户
            tail = re.sub(r"^(?:做|搞|卖|开|干)|的$", "", m.group(2))
            self._described([tail[:n] for n in (4, 3, 2) if len(tail) >= n], found)
        return list(found.values())

    def _described(self, words: list[str], found: dict[str, Match]) -> None:
        for word in words:
            if word in _NOT_DESCRIPTIVE or _LEGAL_WORD.fullmatch(
                word
            ):  # 「…有限公司那个线索」 describes nobody
                continue
            hits = [e.id for e in self.entities.values() if word in e.name]
            if hits:
                for cid in hits:
                    found.setdefault(cid, Match(cid, word, "description", 0.75))
                return

    def resolve(self, text: str) -> list[Match]:
        """Customers named directly, else through a contact; ties are kept (the caller asks which)."""
        described = self.described(text)
        if len(described) > 1:
            return described  # several customers fit the description: ask which
        named = self.customers(text)
        if named:
            top = named[0].score
            close = [m for m in named if m.score >= top - 0.05]
            # a mention inside a longer one of another customer does not count (华星 in 华星电子)
            return [
                m
                for m in close
                if not any(
                    o is not m and m.surface in o.surface and len(o.surface) > len(m.surface) for o in close
                )
            ]
        return self.contacts(text)


def names_of(entity: Entity) -> Sequence[str]:
    """Every way the entity is written (to keep it out of replies that must not name it)."""
    return [entity.name, *short_forms(entity.name), *entity.aliases]


# -- names in transcripts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Correction:
    heard: str  # what the recogniser wrote (得我森)
    name: str  # the deployment's own word it sounds like (德沃森)


def correct_names(text: str, vocabulary: Iterable[str]) -> tuple[str, list[Correction]]:
    """Replace words that sound exactly like a name of the deployment's vocabulary (customers, contacts,
    competitors, products) but are written otherwise: 华兴 → 华星, 得我森 → 德沃森. Longer names first;
    a replaced span is never touched again. Returns the new text and what was corrected."""
    words = sorted({w.strip() for w in vocabulary if w and len(w.strip()) >= _MIN_ALIAS and all(_is_han(c) for c in w.strip())},
                   key=len, reverse=True)  # fmt: skip
    if not words or not text:
        return text, []
    chars = list(text)
    spell = [(_pinyin(c)[0] if _is_han(c) else c) for c in chars]
    taken = [False] * len(chars)
    found: list[Correction] = []
    for word in words:
        target = _pinyin(word)
        if len(target) != len(word):
            continue
        n = len(word)
        i = 0
        while i + n <= len(chars):
            window = "".join(chars[i : i + n])
            if (not any(taken[i : i + n]) and window != word and all(_is_han(c) for c in window)
                    and tuple(spell[i : i + n]) == target):  # fmt: skip
                found.append(Correction(window, word))
                chars[i : i + n] = list(word)
                taken[i : i + n] = [True] * n
                i += n
                continue
            if window == word:
                taken[i : i + n] = [True] * n  # already right: keep it from other names' matches
            i += 1
    return "".join(chars), found
