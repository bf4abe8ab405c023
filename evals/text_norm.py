"""Text normalisation shared by the ASR metrics: both sides of a comparison go through the same steps.

NFKC (full-width → half-width), Traditional → Simplified (OpenCC t2s), lower case, punctuation and
symbols removed. For Chinese every character is a token; for English, whitespace-separated words.
"""

from __future__ import annotations

import functools
import unicodedata


@functools.cache
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def normalize_text(text: str) -> str:
    """Comparable form of a transcript or reference; words stay separated by single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _t2s().convert(text).lower()
    # Apostrophes join ("don't" → "dont"); other punctuation separates ("twenty-one" → "twenty one").
    text = text.replace("'", "").replace("\u2019", "")
    text = "".join(" " if _is_punct(ch) else ch for ch in text)
    return " ".join(text.split())


def char_tokens(text: str) -> list[str]:
    """CER tokens: every non-space character after normalisation."""
    return [ch for ch in normalize_text(text) if not ch.isspace()]


def word_tokens(text: str) -> list[str]:
    """WER tokens: whitespace-separated words after normalisation."""
    return normalize_text(text).split()
