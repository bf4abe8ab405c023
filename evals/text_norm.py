"""Text normalisation shared by the ASR metrics: both sides of a comparison go through the same steps.

NFKC (full-width → half-width), Traditional → Simplified (OpenCC t2s), lower case, punctuation and
symbols removed. For Chinese every character is a token; for English, whitespace-separated words.

Chinese numbers: Whisper writes digits for spoken numbers ("12线", "百分之20" → "20%"), references
write them as spoken (汉字). For CER, Arabic numerals on *both* sides are read out in Chinese the way
they are usually spoken (``chinese_numerals``): values by place (35 → 三十五, 10500 → 一万零五百),
decimals digit by digit after 点, ``N%`` → 百分之N, a four-digit year before 年 and numbers with a
leading zero or 9+ digits (phone, order numbers) digit by digit. Text already in 汉字 is unchanged, so
the rule cannot make a reference and a hypothesis that differ in words look equal; it only stops
counting "35" against "三十五" as two or three errors. WER (English) is unaffected.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_BIG_UNITS = ("", "万", "亿", "万亿")


@functools.cache
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def digits_zh(digits: str) -> str:
    """Digit by digit: "2023" → "二零二三"."""
    return "".join(_DIGITS[int(d)] for d in digits)


def _section(n: int) -> str:
    """0 < n < 10000 by place value, with inner zeros read once (1005 → 一千零五)."""
    out, zero = [], False
    for place in range(3, -1, -1):
        d = n // 10**place % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        out.append(_DIGITS[d] + _SMALL_UNITS[place])
    return "".join(out)


def integer_zh(n: int) -> str:
    """An integer read by place value: 0 → 零, 12 → 十二, 205 → 二百零五, 10500 → 一万零五百."""
    if n == 0:
        return "零"
    if n >= 10**16:
        return digits_zh(str(n))
    sections, k = [], 0
    while n:
        sections.append((n % 10000, k))
        n //= 10000
        k += 1
    out: list[str] = []
    need_zero = False
    for value, k in reversed(sections):
        if value == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or value < 1000):
            out.append("零")
        out.append(_section(value) + _BIG_UNITS[k])
        need_zero = False
    text = "".join(out)
    return text[1:] if text.startswith("一十") else text  # 十二, not 一十二


def _number_zh(number: str) -> str:
    whole, _, frac = number.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) >= 9:
        head = digits_zh(whole)
    else:
        head = integer_zh(int(whole))
    return head + ("点" + digits_zh(frac) if frac else "")


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?=\s*年)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def chinese_numerals(text: str) -> str:
    """Arabic numerals → 汉字 as spoken (see the module docstring); text without digits is unchanged."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _THOUSANDS.sub("", text)
    text = _YEAR.sub(lambda m: digits_zh(m.group(1)), text)
    text = _PERCENT.sub(lambda m: "百分之" + _number_zh(m.group(1)), text)
    return _NUMBER.sub(lambda m: _number_zh(m.group(0)), text)


def normalize_text(text: str, *, chinese_numbers: bool = False) -> str:
    """Comparable form of a transcript or reference; words stay separated by single spaces.
    ``chinese_numbers`` (CER) also reads Arabic numerals out in Chinese."""
    text = unicodedata.normalize("NFKC", text)
    if chinese_numbers:
        text = chinese_numerals(text)
    text = _t2s().convert(text).lower()
    # Apostrophes join ("don't" → "dont"); other punctuation separates ("twenty-one" → "twenty one").
    text = text.replace("'", "").replace("\u2019", "")
    text = "".join(" " if _is_punct(ch) else ch for ch in text)
    return " ".join(text.split())


def char_tokens(text: str) -> list[str]:
    """CER tokens: every non-space character after normalisation (numbers read out in Chinese)."""
    return [ch for ch in normalize_text(text, chinese_numbers=True) if not ch.isspace()]


def word_tokens(text: str) -> list[str]:
    """WER tokens: whitespace-separated words after normalisation."""
    return normalize_text(text).split()
