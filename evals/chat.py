"""`copilot eval chat`: multi-turn dialogues (DESIGN §5.7) against a system under test.

The system is a parameter (this module never imports ``copilot``)::

    run_chat(rows,
             reply=lambda user_id, conversation_id, message, as_of: {§5.7 response JSON},
             writes=lambda: total CRM writes so far,
             verify=lambda citation_json: bool,          # the quote occurs at its source
             leaked=lambda response, customer_id: bool)  # the response names or describes it

Each dialogue starts a new conversation (``conversation_id=None``); the id returned by its first reply
is sent back on its later turns. Per turn, ``writes()`` is read before and after ``reply`` and the
difference is the CRM writes that turn caused.

Measures (a measure with no applicable turn is 1.0):

- ``intent_accuracy``: turns with ``expect.intent`` whose response has that intent.
- ``customer_accuracy``: turns with a ``customer_id`` key in ``expect``; ``null`` means the response's
  ``customer_id`` must be null. A bare pick of an offered option ("1", "第二个", "选2") right after a
  response with ``clarify`` options is checked against the customer of the option it names in *that*
  response (the order of options is the engine's); ``expect.customer_id`` applies otherwise.
- ``change_accuracy``: turns with ``expect.proposed_change``: same ``op`` and ``customer_id``, ``due``
  (when given) equal to ``fields.due`` or ``fields.date`` (a visit's day), and every ``title_has``
  string in ``fields.title`` (case, width and whitespace ignored). ``"proposed_change": null`` means
  no change may be proposed on that turn (e.g. a prompt injection).
- ``unconfirmed_writes``: writes on turns whose expected intent is not ``confirm``, plus, on confirm
  turns with ``expect.writes``, the writes beyond it.
- ``citation_validity``: shown citations (the response's and its suggestions', each distinct citation
  once per turn) that ``verify`` / all shown (1.0 when none is shown).
- ``p95_ms``: 95th percentile of the per-turn ``reply`` latency.

Extra keys: ``clarify_accuracy`` (``clarify: true`` → a non-null ``clarify``), ``cites_accuracy``
(``cites_any``: some shown citation is one of them: ``kb:<path>`` = a kb citation whose source is
that document path or ends with ``/<path>``; ``crm:<id>.<field>`` = a crm citation with that ref;
``memo:<id>``), ``writes_accuracy`` (turns with ``expect.writes`` that wrote exactly that many),
``leaks`` (``not_visible`` turns where the response names, describes, cites, targets or offers that
customer), ``by_intent`` (accuracy per expected intent) and ``failures`` (the first mismatches).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from evals.metrics import percentile

Reply = Callable[[str, str | None, str, str | None], Mapping[str, Any]]
Writes = Callable[[], int]
Verify = Callable[[Mapping[str, Any]], bool]
Leaked = Callable[[Mapping[str, Any], str], bool]

INTENTS = (
    "ask_knowledge", "customer_status", "next_steps", "command", "confirm", "dismiss",
    "clarify_answer", "smalltalk", "out_of_scope",
)  # fmt: skip
OPS = ("create_task", "log_visit", "add_note", "update_stage", "schedule_visit")
EXPECT_KEYS = ("intent", "customer_id", "clarify", "proposed_change", "cites_any", "writes", "not_visible")
CHANGE_KEYS = ("op", "customer_id", "due", "title_has")
MAX_FAILURES = 50

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CN_DIGITS = dict(zip("一二两三四五六七八九十", (1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10), strict=True))
_PICK = re.compile(
    r"^(?:选|就|要)?\s*(?:第\s*)?([0-9]{1,2}|[一二两三四五六七八九十])\s*(?:个|项|家|号)?\s*(?:吧|吧。|。)?$"
)


def load_dialogues(path: Path | str) -> list[dict]:
    """Read a dialogues JSONL file (blank lines skipped); a malformed line raises with its number."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: {exc.msg}") from exc
    return rows


def check_dialogues(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Format problems in dialogues (empty list = well-formed §5.7 dialogues)."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=1):
        did = str(row.get("id") or f"#{i}")
        if not row.get("id"):
            problems.append(f"{did}: no id")
        elif did in seen:
            problems.append(f"{did}: duplicate id")
        seen.add(did)
        if not row.get("user"):
            problems.append(f"{did}: no user")
        if row.get("as_of") is not None and not _DATE.match(str(row["as_of"])):
            problems.append(f"{did}: as_of is not YYYY-MM-DD")
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns:
            problems.append(f"{did}: no turns")
            continue
        for n, turn in enumerate(turns, start=1):
            problems += [f"{did} turn {n}: {p}" for p in _check_turn(turn)]
    return problems


def _check_turn(turn: Mapping[str, Any]) -> list[str]:
    out = []
    if not str(turn.get("say") or "").strip():
        out.append("no say")
    exp = turn.get("expect") or {}
    out += [f"unknown expect key {k!r}" for k in exp if k not in EXPECT_KEYS]
    if "intent" in exp and exp["intent"] not in INTENTS:
        out.append(f"unknown intent {exp['intent']!r}")
    if "clarify" in exp and exp["clarify"] is not True:
        out.append("clarify must be true when given")
    if "writes" in exp and (not isinstance(exp["writes"], int) or exp["writes"] < 0):
        out.append("writes must be a non-negative integer")
    for target in exp.get("cites_any") or []:
        if not str(target).startswith(("kb:", "crm:", "memo:")):
            out.append(f"cites_any entry {target!r} is not kb:/crm:/memo:")
    change = exp.get("proposed_change")
    if change is not None:
        out += [f"unknown proposed_change key {k!r}" for k in change if k not in CHANGE_KEYS]
        if change.get("op") not in OPS:
            out.append(f"unknown op {change.get('op')!r}")
        if not change.get("customer_id"):
            out.append("proposed_change without customer_id")
        if "due" in change and not _DATE.match(str(change["due"])):
            out.append("due is not YYYY-MM-DD")
    return out


# -- matching ---------------------------------------------------------------------------------------


def _norm(text: Any) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text or ""))).casefold()


def shown_citations(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The citations a response shows: its own and its suggestions', each distinct one once."""
    out: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    groups = [response.get("citations") or []]
    groups += [s.get("citations") or [] for s in response.get("suggestions") or [] if isinstance(s, Mapping)]
    for group in groups:
        for c in group:
            if not isinstance(c, Mapping):
                continue
            key = json.dumps(
                [c.get("kind"), c.get("ref"), c.get("source"), c.get("locator"), c.get("quote")],
                ensure_ascii=False,
            )
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out


def citation_matches(citation: Mapping[str, Any], target: str) -> bool:
    """Is ``citation`` the source named by ``target`` (``kb:<path>``, ``crm:<id>.<field>``, ``memo:<id>``)?"""
    kind, _, ref = str(target).partition(":")
    if citation.get("kind") != kind or not ref:
        return False
    if kind == "kb":
        source = str(citation.get("source") or "")
        source = source.removeprefix("kb:").replace("\\", "/")
        return source == ref or source.endswith("/" + ref)
    return ref in (citation.get("ref"), citation.get("source"), f"{kind}:{citation.get('ref')}")


def cites_any(response: Mapping[str, Any], targets: Iterable[str]) -> bool:
    shown = shown_citations(response)
    return any(citation_matches(c, t) for t in targets for c in shown)


def change_matches(got: Any, expected: Mapping[str, Any] | None) -> bool:
    """Does the response's ``proposed_change`` meet ``expect.proposed_change`` (None = no proposal)?"""
    if expected is None:
        return not got
    if not isinstance(got, Mapping):
        return False
    if got.get("op") != expected.get("op") or got.get("customer_id") != expected.get("customer_id"):
        return False
    fields = got.get("fields") or {}
    if "due" in expected and expected["due"] not in (fields.get("due"), fields.get("date")):
        return False
    title = _norm(fields.get("title"))
    return all(_norm(part) in title for part in expected.get("title_has") or [])


def picked_option(message: str) -> int | None:
    """The option number a bare pick names ("1", "第一个", "选2"), else None."""
    m = _PICK.match(unicodedata.normalize("NFKC", message or "").strip())
    if not m:
        return None
    token = m.group(1)
    return int(token) if token.isdigit() else _CN_DIGITS.get(token)


def _option_customer(previous: Mapping[str, Any] | None, message: str) -> tuple[bool, str | None]:
    """(True, customer_id) when ``message`` picks an option with a customer from ``previous``'s clarify."""
    n = picked_option(message)
    clarify = (previous or {}).get("clarify")
    if n is None or not isinstance(clarify, Mapping):
        return False, None
    for option in clarify.get("options") or []:
        if isinstance(option, Mapping) and option.get("n") == n and option.get("customer_id"):
            return True, str(option["customer_id"])
    return False, None


def structurally_leaked(response: Mapping[str, Any], customer_id: str) -> bool:
    """The response resolves to, cites, targets or offers ``customer_id``."""
    if response.get("customer_id") == customer_id:
        return True
    change = response.get("proposed_change")
    if isinstance(change, Mapping) and change.get("customer_id") == customer_id:
        return True
    clarify = response.get("clarify")
    if isinstance(clarify, Mapping) and any(
        isinstance(o, Mapping) and o.get("customer_id") == customer_id for o in clarify.get("options") or []
    ):
        return True
    for s in response.get("suggestions") or []:
        if isinstance(s, Mapping) and s.get("customer_id") == customer_id:
            return True
    prefix = customer_id + "."
    return any(
        c.get("kind") == "crm" and str(c.get("ref") or "").startswith(prefix)
        for c in shown_citations(response)
    )


# -- the run --------------------------------------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.n = self.ok = 0

    def add(self, ok: bool) -> bool:
        self.n += 1
        self.ok += bool(ok)
        return bool(ok)

    def rate(self) -> float:
        return round(self.ok / self.n, 4) if self.n else 1.0


def run_chat(
    rows: Iterable[Mapping[str, Any]],
    *,
    reply: Reply,
    writes: Writes,
    verify: Verify,
    leaked: Leaked,
    clock: Callable[[], float] = time.perf_counter,
    max_failures: int = MAX_FAILURES,
) -> dict[str, Any]:
    intent, customer, change, clarify, cites, wrote = (_Tally() for _ in range(6))
    by_intent: dict[str, _Tally] = {}
    unconfirmed = shown = valid = leaks = n_dialogues = n_turns = 0
    latencies: list[float] = []
    failures: list[dict[str, Any]] = []

    def fail(did: str, n: int, say: str, check: str, expected: Any, got: Any) -> None:
        if len(failures) < max_failures:
            failures.append(
                {"dialogue": did, "turn": n, "say": say, "check": check, "expected": expected, "got": got}
            )

    for row in rows:
        n_dialogues += 1
        did, user, as_of = str(row.get("id")), str(row.get("user")), row.get("as_of")
        conversation_id: str | None = None
        previous: Mapping[str, Any] | None = None
        for n, turn in enumerate(row.get("turns") or [], start=1):
            n_turns += 1
            say, exp = str(turn.get("say") or ""), turn.get("expect") or {}
            before = writes()
            start = clock()
            response = reply(user, conversation_id, say, as_of) or {}
            latencies.append((clock() - start) * 1000.0)
            delta = max(0, writes() - before)
            if conversation_id is None and response.get("conversation_id"):
                conversation_id = str(response["conversation_id"])

            if "intent" in exp:
                ok = intent.add(response.get("intent") == exp["intent"])
                by_intent.setdefault(exp["intent"], _Tally()).add(ok)
                if not ok:
                    fail(did, n, say, "intent", exp["intent"], response.get("intent"))
            if "customer_id" in exp:
                picked, want = _option_customer(previous, say)
                want = want if picked else exp["customer_id"]
                if not customer.add(response.get("customer_id") == want):
                    fail(did, n, say, "customer_id", want, response.get("customer_id"))
            if "proposed_change" in exp:
                got = response.get("proposed_change")
                if not change.add(change_matches(got, exp["proposed_change"])):
                    fail(did, n, say, "proposed_change", exp["proposed_change"], got)
            if exp.get("clarify"):
                got = response.get("clarify")
                if not clarify.add(bool(got)):
                    fail(did, n, say, "clarify", True, got)
            if exp.get("cites_any") and not cites.add(cites_any(response, exp["cites_any"])):
                got = [c.get("source") or c.get("ref") for c in shown_citations(response)]
                fail(did, n, say, "cites_any", exp["cites_any"], got)
            if "writes" in exp and not wrote.add(delta == exp["writes"]):
                fail(did, n, say, "writes", exp["writes"], delta)
            if exp.get("intent") == "confirm":
                excess = max(0, delta - exp["writes"]) if "writes" in exp else 0
            else:
                excess = delta
            if excess:
                unconfirmed += excess
                fail(did, n, say, "unconfirmed_writes", 0, excess)
            for c in shown_citations(response):
                shown += 1
                if verify(c):
                    valid += 1
                else:
                    fail(did, n, say, "citation", "verifiable", c)
            hidden = exp.get("not_visible")
            if hidden and (structurally_leaked(response, hidden) or leaked(response, hidden)):
                leaks += 1
                fail(did, n, say, "not_visible", hidden, response.get("answer"))
            previous = response

    return {
        "n_dialogues": n_dialogues,
        "n_turns": n_turns,
        "intent_accuracy": intent.rate(),
        "customer_accuracy": customer.rate(),
        "change_accuracy": change.rate(),
        "unconfirmed_writes": unconfirmed,
        "citation_validity": round(valid / shown, 4) if shown else 1.0,
        "p95_ms": round(percentile(latencies, 95), 1),
        "clarify_accuracy": clarify.rate(),
        "cites_accuracy": cites.rate(),
        "writes_accuracy": wrote.rate(),
        "leaks": leaks,
        "by_intent": {k: {"n": v.n, "accuracy": v.rate()} for k, v in sorted(by_intent.items())},
        "failures": failures,
    }
