"""What every local embedding runtime shares: the error type, row normalisation and the e5 prompt rule.

Models with query/passage prompts (e5) embed a *short one-line* passage (an FAQ question, a title) with
the query prompt: e5 is trained to use ``query:`` on both sides of symmetric, paraphrase-style matching,
and a rep's question against a stored question is exactly that (recall@10 +0.02 on AFQMC and +0.01 on
BQ). Longer passages keep ``passage:``. The cost is the same: each text is still embedded once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SYMMETRIC_MAX_CHARS = 64  # a one-line passage this short is matched like a question (see above)


class ModelUnavailable(RuntimeError):
    """An embedding model cannot be loaded; the message says what to install or set (中文)."""


def is_symmetric_passage(text: str) -> bool:
    """A passage short and single-line enough to be embedded with the query prompt."""
    text = text.strip()
    return bool(text) and len(text) <= SYMMETRIC_MAX_CHARS and "\n" not in text


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def embed_passages_by_prompt(
    encode: Callable[[list[str], str | None], np.ndarray],
    texts: Sequence[str],
    *,
    query_prompt: str | None,
    passage_prompt: str | None,
    dim: int,
) -> np.ndarray:
    """``encode(texts, prompt)`` for passages: short one-liners with the query prompt, the rest with
    the passage prompt (when the model has both), rows back in input order."""
    texts = list(texts)
    if passage_prompt is None or query_prompt is None:
        return encode(texts, passage_prompt)
    short = [n for n, t in enumerate(texts) if is_symmetric_passage(t)]
    if not short:
        return encode(texts, passage_prompt)
    if len(short) == len(texts):
        return encode(texts, query_prompt)
    long_ = sorted(set(range(len(texts))) - set(short))
    out = np.zeros((len(texts), dim), dtype=np.float32)
    out[short] = encode([texts[n] for n in short], query_prompt)
    out[long_] = encode([texts[n] for n in long_], passage_prompt)
    return out


class PromptedEncoder:
    """What both local e5 runtimes (torch, onnxruntime) share: query/passage prompts around one
    ``_encode(texts, prompt)``, and the common part of ``describe``."""

    name: str
    path: object
    dim: int
    load_seconds: float
    backend: str
    _query_prompt: str | None
    _passage_prompt: str | None

    def _encode(self, texts, prompt):  # pragma: no cover - provided by each runtime
        raise NotImplementedError

    def embed_queries(self, texts):
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts):
        return embed_passages_by_prompt(
            self._encode,
            texts,
            query_prompt=self._query_prompt,
            passage_prompt=self._passage_prompt,
            dim=self.dim,
        )

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "dim": self.dim,
                "load_seconds": round(self.load_seconds, 3), "prompts": bool(self._query_prompt),
                "backend": self.backend}  # fmt: skip
