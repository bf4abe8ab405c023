"""The offline extractor: clause rules over the lexicons, CRM names and aliases, and ``dates.resolve_due``
for relative due dates. It says what it could not find (``missing``) instead of guessing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from copilot.voice.extract.dates import resolve_due
from copilot.voice.extract.embed import PrototypeTyper, typer_for
from copilot.voice.extract.lexicon import (
    _ACTION,
    _BRAND_CUES,
    _BRAND_NAME,
    _BRAND_TAIL,
    _COMMIT_CUE,
    _COMPARISON_TAIL,
    _COMPETITOR_CUES,
    _CONCERN,
    _CONCERN_QUESTION,
    _FUTURE_SUBJECT_CUSTOMER,
    _NEED,
    _NEED_LEAD,
    _NEGATED_CUE,
    _NEGATIVE,
    _NOT_COMPANY,
    _OBJECTION_PATTERNS,
    _PAST,
    _POSITIVE,
    _PRICE_OR_COMPARISON,
    _REP_TURN,
    _STAGE_CUES,
    _STRONG_CONCERN,
    _SURNAMES,
    _TITLED,
    _WEAK_TYPES,
    _Clause,
    _clauses,
    _clean,
    _ref,
)
from copilot.voice.extract.record import (
    CUSTOMER,
    REP,
    STAGES,
    CompetitorMention,
    ContactMention,
    CustomerMatch,
    ExtractionContext,
    Judgement,
    KnownContact,
    Need,
    NextStep,
    Objection,
    VisitRecord,
    _SegmentLike,
)


def _surname_contact(mention: str, title: str, contacts: Sequence[KnownContact]) -> KnownContact | None:
    same = [c for c in contacts if c.name.startswith(mention[0])]
    if len(same) > 1:
        titled = [c for c in same if title.rstrip("总") and title.rstrip("总") in c.role] or [
            c for c in same if title == "总" and "总" in c.role
        ]
        same = titled or same
    return same[0] if same else None


def _find_contacts(
    clauses: Sequence[_Clause],
    segments: Sequence[_SegmentLike],
    ctx: ExtractionContext,
    customer_id: str | None,
) -> tuple[list[ContactMention], dict[str, str]]:
    """Contacts named in the memo, and a map mention → display name (used for step owners)."""
    pool = [c for c in ctx.contacts if customer_id is None or c.customer_id == customer_id]
    found: dict[str, tuple[ContactMention, set[int]]] = {}
    said_as: dict[str, str] = {}
    for cl in clauses:
        for c in pool:
            if c.name in cl.text:
                _add_contact(
                    found, c.name, ContactMention(c.name, c.role, c.name, True, c.is_decision_maker), cl
                )
                said_as[c.name] = c.name
        for m in _TITLED.finditer(cl.text):
            surname, title = m.group(1), m.group(2)
            if surname not in _SURNAMES:
                continue
            mention = surname + title
            known = _surname_contact(mention, title, pool)
            if known is not None:
                _add_contact(
                    found,
                    known.name,
                    ContactMention(known.name, known.role, mention, True, known.is_decision_maker),
                    cl,
                )
                said_as[mention] = known.name
            elif not pool or mention not in said_as:
                _add_contact(found, mention, ContactMention(mention, title, mention, False, None), cl)
                said_as[mention] = mention
    out = []
    for mention, segs in found.values():
        out.append(
            ContactMention(
                mention.name,
                mention.role,
                mention.mentioned_as,
                mention.in_crm,
                mention.is_decision_maker,
                _ref(segments, *segs),
            )  # fmt: skip
        )
    # Unknown titled people are listed after the CRM's contacts.
    out.sort(key=lambda c: not c.in_crm)
    return out, said_as


def _add_contact(found: dict, key: str, mention: ContactMention, cl: _Clause) -> None:
    if key in found:
        found[key][1].add(cl.segment)
    else:
        found[key] = (mention, {cl.segment})


def _find_customer(
    clauses: Sequence[_Clause], segments: Sequence[_SegmentLike], ctx: ExtractionContext
) -> CustomerMatch | None:
    hits: dict[str, tuple[str, set[int]]] = {}
    for cust in ctx.customers:
        for cl in clauses:
            alias = next((a for a in cust.aliases if a in cl.text), None)
            if alias:
                said, segs = hits.setdefault(cust.id, (alias, set()))
                segs.add(cl.segment)
    if ctx.customer_id:
        chosen = next((c for c in ctx.customers if c.id == ctx.customer_id), None)
        if chosen is not None:
            said, segs = hits.get(chosen.id, (None, set()))
            return CustomerMatch(chosen.id, chosen.name, said, "upload", _ref(segments, *segs))
    if not hits:
        return None
    best = max(hits, key=lambda cid: len(hits[cid][1]))
    cust = next(c for c in ctx.customers if c.id == best)
    return CustomerMatch(cust.id, cust.name, hits[best][0], "transcript", _ref(segments, *hits[best][1]))


def _find_competitors(
    clauses: Sequence[_Clause], segments: Sequence[_SegmentLike], ctx: ExtractionContext, exclude: set[str]
) -> list[CompetitorMention]:
    found: dict[str, tuple[str, bool, set[int]]] = {}
    for cl in clauses:
        for canonical, aliases in ctx.competitors.items():
            alias = next((a for a in sorted(aliases, key=len, reverse=True) if a in cl.text), None)
            if alias:
                found.setdefault(canonical, (alias, True, set()))[2].add(cl.segment)
        said_not = bool(_NEGATED_CUE.search(cl.text))  # "没聊竞争对手的事" names no one
        for m in (m for cue in _COMPETITOR_CUES if not said_not for m in cue.finditer(cl.text)):
            name = m.group("name")
            if _NOT_COMPANY.match(name) or any(name in a or a in name for a in exclude):
                continue
            if any(name in a or a in name for aliases in ctx.competitors.values() for a in aliases):
                continue
            found.setdefault(name, (name, False, set()))[2].add(cl.segment)
        for m in (m for cue in _BRAND_CUES for m in cue.finditer(cl.text)):
            name = m.group("name")
            if not _BRAND_TAIL.search(name) or _NOT_COMPANY.match(name) or name in found:
                continue
            if any(name in a or a in name for a in exclude):
                continue
            if any(name in a or a in name for aliases in ctx.competitors.values() for a in aliases):
                continue
            found.setdefault(name, (name, False, set()))[2].add(cl.segment)
    priced = {cl.sentence for cl in clauses if _PRICE_OR_COMPARISON.search(cl.text)}
    for cl in (cl for cl in clauses if cl.sentence in priced):
        for m in _BRAND_NAME.finditer(cl.text):
            name = m.group("name")
            if len(name) < 3 or _NOT_COMPANY.match(name) or any(n in name or name in n for n in found):
                continue
            if any(name in a or a in name for a in exclude) or any(
                name in a or a in name for aliases in ctx.competitors.values() for a in aliases
            ):
                continue
            found.setdefault(name, (name, False, set()))[2].add(cl.segment)
    # An unknown name seen once by its cue is also caught later by its bare mentions.
    for name, (_, known, segs) in list(found.items()):
        if not known:
            segs.update(cl.segment for cl in clauses if name in cl.text)
    return [
        CompetitorMention(n, said, known, _ref(segments, *segs)) for n, (said, known, segs) in found.items()
    ]


def _objection_type(
    text: str, competitor_names: Sequence[str], typer: PrototypeTyper | None = None
) -> str | None:
    """The lexicon's type; with an embedding typer, it breaks ties between topic lexicons and types the
    concerns the lexicons cannot (else 其他)."""
    strong = [kind for kind, pattern in _OBJECTION_PATTERNS.items() if pattern.search(text)]
    if strong:
        return typer.pick(text, strong) if typer is not None and len(strong) > 1 else strong[0]
    concern = _CONCERN.search(text)
    if concern:
        for kind, pattern in _WEAK_TYPES.items():
            if pattern.search(text):
                return kind
    if any(n in text for n in competitor_names) and re.search(
        r"比|那边|人家|更|送|用的|报价|报了|方案|便宜|低|免费|给了|已经在用|也在|找", text
    ):
        return "竞品"
    if _STRONG_CONCERN.search(text):
        return (typer.classify(text) if typer is not None else None) or "其他"
    return None


def _question_type(text: str) -> str | None:
    """The topic of a worried question ("数据是不是存在国内" → 技术), from the weak-type lexicons."""
    for kind, pattern in _WEAK_TYPES.items():
        if pattern.search(text):
            return kind
    return None


def _owner(text: str, said_as: Mapping[str, str]) -> str:
    head = text[:8]
    for mention, name in said_as.items():
        pos = head.find(mention)
        if pos != -1 and not re.search(r"(?:给|约|跟|和|找|请|陪|带)\s*$", head[:pos]):
            return name
    if _FUTURE_SUBJECT_CUSTOMER.match(text):
        return CUSTOMER
    return REP


_DONE = re.compile(r"(?:去|见|做|开|谈|聊|看|拜访|参加|带|约)了(?!解)")
_STILL_AHEAD = re.compile(r"之前|以前|前把|再|会|要|将|准备")
_SPEECH = re.compile(r"说|问|要求|希望|提出|表示|觉得|想")
_PRONOUN = re.compile(r"^(?:他们|她们|他|她|对方|客户|人家)")
_REP_LEAD = re.compile(r"^(?:我们这边|我这边|我们|我)?(?:今天|明天)?(?:先|再|尽快|马上)?(?=.{4,})")


def _customer_speech(text: str, said_as: Mapping[str, str]) -> bool:
    """The clause reports what a customer said or asked ("郑主任问…", "她要求…"), not a plan of the rep's."""
    speech = _SPEECH.search(text[:10])
    if speech is None or "我" in text[: speech.start()]:
        return False
    head = text[: speech.start()]
    return bool(_PRONOUN.match(head)) or any(m in head for m in said_as)


def _similar(a: str, b: str) -> bool:
    a, b = re.sub(r"\W", "", a), re.sub(r"\W", "", b)
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return short in long_ and len(short) / len(long_) >= 0.6


def extract_offline(
    segments: Sequence[_SegmentLike],
    *,
    recorded_at: date | datetime,
    context: ExtractionContext | None = None,
    embedder: Any = None,
) -> VisitRecord:
    """``embedder`` (optional, a knowledge_base Embedder) types the objections the lexicons cannot."""
    ctx = context or ExtractionContext()
    typer = typer_for(embedder)
    clauses = _clauses(segments)
    customer = _find_customer(clauses, segments, ctx)
    contacts, said_as = _find_contacts(clauses, segments, ctx, customer.id if customer else ctx.customer_id)
    exclude = set(customer and next((c.aliases for c in ctx.customers if c.id == customer.id), ()) or ())
    exclude |= set(said_as)
    competitors = _find_competitors(clauses, segments, ctx, exclude)
    competitor_names = [
        a for c in competitors for a in (c.mentioned_as, c.name, *ctx.competitors.get(c.name, ()))
    ]

    recorded_day = recorded_at.date() if isinstance(recorded_at, datetime) else recorded_at
    # Pass 1: label every clause (step / need / objection type / rep turn / nothing).
    labels: list[tuple[str, Any]] = []
    pending_due = None
    commit_sentence: int | None = None  # a sentence opening with 下一步/接下来: its actions are steps
    last_step: NextStep | None = None
    rep_sentence = named_sentence = None  # the sentence the rep is speaking in / that names a competitor
    for cl in clauses:
        text = cl.text
        if cl.first_in_sentence:
            pending_due, last_step = None, None
            commit_sentence = (
                cl.sentence if re.match(r"^(?:下一步|接下来|后续|下步|待办|todo)", text, re.I) else None
            )
        body = _clean(text)
        if not body:
            labels.append(("none", None))
            continue
        due = resolve_due(body, recorded_at)
        has_action = bool(_ACTION.search(re.sub(r"(?:之前|以前|前|之内|以内|内)$", "", body))) or bool(
            due is not None and re.search(r"把.{2,}", body)  # "下周四之前把参数对一下": 把 + a date is a plan
        )
        continues = last_step is not None and bool(
            re.match(r"^(?:并且|并|同时|顺便|一起|也|再|还要|还得|然后|再把|把|先把|先)", text)
        )
        # 「今天」 dates the visit itself as often as a plan: only a plan when it says so (前, 把…, a cue)
        today_only = (
            due is not None
            and due.date == recorded_day
            and not _COMMIT_CUE.search(body)
            and not re.search(r"前|之前|以前|之内|以内", due.phrase)
            and (
                not re.search(r"把.{2,}", body)
                or bool(re.search(r"把[^，,]{0,6}得(?:很|特别|太|比较|挺|有点)", body))
            )
        )
        future = (
            commit_sentence == cl.sentence
            or bool(_COMMIT_CUE.search(body))
            or (due is not None and not today_only)
            or continues
        )
        rest = (
            re.sub(
                r"^(?:这个|这|那个|时间|日子)?(?:就|再|定在|定到|放在|改到)?",
                "",
                body.replace(due.phrase, "", 1),
            )
            if due
            else ""
        )
        if (
            due is not None
            and last_step is not None
            and labels[-1] == ("step", last_step)
            and (not has_action or len(re.sub(r"(?:就|再|了)", "", rest)) <= 2)
            and len(rest) <= 4
            and re.search(r"^(?:这个|这|那个|时间|日子)|定在|定到|放在|改到", text.strip(" ，,"))
        ):  # "…开个会，时间定在下周四" / "…发给她，这个明天就发": the date of the step just said
            last_step = replace(last_step, due=due.iso(), due_phrase=due.phrase)
            labels[-1] = ("step", last_step)
            labels.append(("none", None))
            continue
        if due is not None and len(body) <= len(due.phrase) + 2 and not has_action:
            pending_due = due  # "下周一之前，把报价发过去": the date stands alone before the action
            labels.append(("none", None))
            continue
        spoken = _customer_speech(body, said_as)  # "郑主任问能不能做到当天出报告": not the rep's plan
        done = bool(_DONE.search(body)) and not _STILL_AHEAD.search(body)  # "今天去仁济做了评审"
        if (
            has_action
            and not spoken
            and not done
            and due is None
            and not continues
            and not body.startswith("先")  # "…，先把演示视频发给她": a step of its own
            and last_step is not None
            and labels[-1] == ("step", last_step)
            and not _PAST.search(body)
        ):  # "下周一去一趟，当面给老板演示": the same step goes on
            last_step = replace(last_step, action=f"{last_step.action}，{body}")
            labels[-1] = ("step", last_step)
            labels.append(("none", None))
            continue
        if (
            has_action
            and future
            and not spoken
            and not done
            and not _PAST.search(body)
            and not re.search(r"(?:了|过)$", body)
        ):
            if due is None and pending_due is not None:
                due, pending_due = pending_due, None
            if (
                due is None
                and continues
                and last_step is not None
                and re.match(r"^(?:并且|并|同时|顺便|一起)", text)
            ):
                step_due, step_phrase = (
                    last_step.due,
                    last_step.due_phrase,
                )  # done alongside the previous step
            else:
                step_due, step_phrase = (due.iso(), due.phrase) if due else (None, None)
            plan = (
                body.replace(due.phrase, "", 1)
                if due is not None and len(body) > len(due.phrase) + 1
                else body
            )
            action = _REP_LEAD.sub("", plan.strip(" ，,")).strip(" ，,") or plan
            last_step = NextStep(
                action or body, _owner(body, said_as), step_due, step_phrase, _ref(segments, cl.segment)
            )
            labels.append(("step", last_step))
            continue
        if any(n and n in body for n in competitor_names):
            named_sentence = cl.sentence
        elif done and not spoken:  # the rep's account of the visit itself ("今天去仁济做了对接评审")
            labels.append(("rep", None))
            continue
        if _REP_TURN.match(body) or rep_sentence == cl.sentence:
            rep_sentence = cl.sentence  # "我说授权书没问题，折扣要请示": the rest of the sentence too
            labels.append(("rep", None))
            continue
        kind = None if _NEGATED_CUE.search(body) else _objection_type(body, competitor_names, typer)
        if kind is None and named_sentence == cl.sentence and _COMPARISON_TAIL.match(body):
            kind = "竞品"  # "华影医疗上周又去了一次，据说给了三年免费保修"
        wants = _NEED.search(body) and len(body) >= 4
        if wants and kind is None and _CONCERN_QUESTION.search(body):
            kind = _question_type(body)
            wants = kind is None
        if wants and (kind is None or not _STRONG_CONCERN.search(body)) and kind not in ("价格", "预算"):
            labels.append(("need", _NEED_LEAD.sub("", body) or body))
        elif kind:
            labels.append(("objection", kind))
        else:
            labels.append(("none", None))

    # Pass 2: an objection is the run of its sentence's clauses around the trigger that say nothing else.
    needs: list[Need] = []
    objections: list[Objection] = []
    steps = [value for label, value in labels if label == "step"]
    used: set[int] = set()
    for k, (label, value) in enumerate(labels):
        if label == "need" and k not in used and not any(_similar(n.text, value) for n in needs):
            end = k  # the need goes on through the sentence's next clauses that say nothing else
            while (
                end + 1 < len(clauses)
                and clauses[end + 1].sentence == clauses[k].sentence
                and labels[end + 1][0] in ("none", "need")
                and _clean(clauses[end + 1].text)
            ):
                end += 1
            more = [
                labels[i][1] if labels[i][0] == "need" else _clean(clauses[i].text)
                for i in range(k + 1, end + 1)
            ]
            text = "，".join([value, *more])
            needs.append(Need(text, _ref(segments, *(clauses[i].segment for i in range(k, end + 1)))))
            used.update(range(k + 1, end + 1))
        if label != "objection" or k in used:
            continue
        lo = hi = k
        same = clauses[k].sentence
        while (  # a lead-in clause when the trigger is short ("太贵了") or the lead-in names a competitor
            lo - 1 >= 0
            and (
                len(_clean(clauses[k].text)) < 10
                or any(n and n in clauses[lo - 1].text for n in competitor_names)
            )
            and clauses[lo - 1].sentence == same
            and labels[lo - 1][0] == "none"
            and lo - 1 not in used
            and not _NEGATED_CUE.search(clauses[lo - 1].text)  # "孔总说续约没问题，希望今年不涨价"
        ):
            lo -= 1
        while (  # the clauses that say nothing else, the same concern, or go on with the comparison
            hi + 1 < len(clauses)
            and clauses[hi + 1].sentence == same
            and (
                labels[hi + 1][0] == "none"
                or labels[hi + 1] == ("objection", value)
                or (labels[hi + 1][0] == "objection" and _COMPARISON_TAIL.match(_clean(clauses[hi + 1].text)))
                or (value == "竞品" and labels[hi + 1] == ("objection", "价格"))
            )
        ):
            hi += 1
        used.update(range(lo, hi + 1))
        span = "，".join(b for b in (_clean(clauses[i].text) for i in range(lo, hi + 1)) if b)
        if not any(o.type == value and _similar(o.text, span) for o in objections):
            objections.append(
                Objection(value, span, _ref(segments, *(clauses[i].segment for i in range(lo, hi + 1))))
            )

    sentiment = _sentiment(clauses, segments)
    step_clauses = {id(c) for c, (label, _) in zip(clauses, labels, strict=True) if label == "step"}
    stage = _stage([c for c in clauses if id(c) not in step_clauses], segments, None)
    if stage.value is None:  # only planned steps hint at the stage, else the CRM's current stage
        stage = _stage(clauses, segments, ctx.stage)
    missing = []
    if customer is None:
        missing.append("未能把录音对应到 CRM 中的客户，请手动选择客户。")
    if not needs:
        missing.append("未识别到明确的客户需求。")
    if not steps:
        missing.append("未识别到下一步行动或承诺。")
    elif any(s.due is None for s in steps):
        missing.append("部分下一步没有明确的截止日期，请补充。")
    if stage.value is None:
        missing.append("无法从录音判断商机阶段。")
    return VisitRecord(
        customer, tuple(contacts), tuple(needs), tuple(objections), tuple(competitors), tuple(steps),
        sentiment, stage, "offline", tuple(missing),
    )  # fmt: skip


def _sentiment(clauses: Sequence[_Clause], segments: Sequence[_SegmentLike]) -> Judgement:
    pos = [
        cl.segment
        for cl in clauses
        if _POSITIVE.search(cl.text) and not re.search(r"不(?:太)?(?:认可|满意|支持)", cl.text)
    ]
    neg = [cl.segment for cl in clauses if _NEGATIVE.search(cl.text)]
    score = len(pos) - len(neg)
    if score > 0:
        return Judgement("积极", f"积极表述 {len(pos)} 处，消极 {len(neg)} 处", _ref(segments, *pos))
    if score < 0:
        return Judgement("消极", f"消极表述 {len(neg)} 处，积极 {len(pos)} 处", _ref(segments, *neg))
    return Judgement("中性", "积极与消极表述持平或都没有", _ref(segments, *(pos + neg)))


# Words every plan uses (方案, 报价, 需求): in the rep's planned steps they hint at a stage only when the
# CRM does not say one (called with the CRM stage only for those clauses, below).
_WEAK_STAGES = ("方案报价", "需求确认")


def _stage(clauses: Sequence[_Clause], segments: Sequence[_SegmentLike], crm_stage: str | None) -> Judgement:
    for stage, pattern in _STAGE_CUES:
        if stage in _WEAK_STAGES and crm_stage in STAGES:
            return Judgement(crm_stage, "录音中没有明确的阶段变化，沿用 CRM 当前阶段")
        segs = [cl.segment for cl in clauses if pattern.search(cl.text)]
        if stage in ("输单", "赢单"):
            segs = [
                cl.segment
                for cl in clauses
                if pattern.search(cl.text) and not re.search(r"如果|要是|担心|怕|万一", cl.text)
            ]
        if segs:
            return Judgement(stage, f"录音中出现与「{stage}」相关的表述", _ref(segments, *segs))
    if crm_stage in STAGES:
        return Judgement(crm_stage, "录音中没有阶段线索，沿用 CRM 当前阶段")
    return Judgement(None, "录音中没有阶段线索")
