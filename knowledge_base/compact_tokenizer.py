"""The model's Unigram tokenizer with only the pieces Chinese/English text can use: same ids, a third of
the memory.

``tokenizers`` keeps a Unigram vocabulary in a byte trie; for XLM-R's 250k pieces that is ~265 MB of a
server's RSS. Pieces made only of the scripts a sales team writes in (ASCII/Latin, CJK, kana, their
punctuation, symbols and emoji) are 132k and take ~90 MB. For a text whose *normalised* characters
all belong to those scripts, every piece of the full vocabulary that can match part of it is in the
compact one, and the lowest score (the unknown-piece penalty derives from it) is kept, so the Viterbi
segmentation, and the ids after mapping back, are exactly the full tokenizer's. Any other text (Cyrillic,
Arabic, Hangul, …) goes to the full tokenizer, loaded on first need.

Building the compact vocabulary from the 17 MB ``tokenizer.json`` takes ~1.7 s; with a ``cache_dir`` it
is built once and saved there (keyed by the source file's sha256), so a CLI command loads it in ~0.2 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def covered(char: str) -> bool:
    """A character of the scripts the compact vocabulary keeps."""
    o = ord(char)
    return (
        o < 0x250  # ASCII, Latin-1, Latin Extended-A/B
        or 0x2000 <= o <= 0x27BF  # punctuation, letter-like symbols, arrows, maths, dingbats
        or 0x2E80 <= o <= 0x30FF  # CJK radicals, CJK punctuation, kana
        or 0x3400 <= o <= 0x4DBF  # CJK extension A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
        or 0x1F300 <= o <= 0x1FAFF  # emoji
    )


class CompactTokenizer:
    """``encode(texts) -> list of id lists`` in the full tokenizer's ids, truncated to ``max_length``."""

    def __init__(self, path: Path | str, *, max_length: int, cache_dir: Path | str | None = None) -> None:
        from tokenizers import Tokenizer

        self.path, self.max_length = Path(path), max_length
        self._full = None
        self._lock = threading.Lock()
        self.from_cache = False
        raw = self.path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        cached = _read_cache(Path(cache_dir), digest) if cache_dir is not None else None
        if cached is not None:
            compact_json, keep, self.vocab_size = cached
        else:
            spec = json.loads(raw)
            compact = _compact_spec(spec)
            if compact is None:  # not a Unigram with a template post-processor: use it as it is
                self._compact, self._id_map = None, None
                self._load_full()
                return
            compact_spec, keep_list = compact
            compact_json, keep = json.dumps(compact_spec), np.asarray(keep_list, dtype=np.int64)
            self.vocab_size = len(spec["model"]["vocab"])
            if cache_dir is not None:
                _write_cache(Path(cache_dir), digest, compact_json, keep, self.vocab_size)
        self._compact = Tokenizer.from_str(compact_json)
        self._compact.enable_truncation(max_length)
        self._compact.no_padding()
        self._id_map = keep
        self.compact_size = len(keep)
        self.from_cache = cached is not None

    @property
    def full_loaded(self) -> bool:
        return self._full is not None

    def _load_full(self):
        with self._lock:
            if self._full is None:
                from tokenizers import Tokenizer

                full = Tokenizer.from_file(str(self.path))
                full.enable_truncation(self.max_length)
                full.no_padding()
                self._full = full
        return self._full

    def _fits(self, text: str) -> bool:
        normalizer = self._compact.normalizer
        normalised = normalizer.normalize_str(text) if normalizer is not None else text
        return all(map(covered, normalised))

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        texts = list(texts)
        if self._compact is None:
            return [np.asarray(e.ids, dtype=np.int64) for e in self._load_full().encode_batch(texts)]
        out: list[np.ndarray | None] = [None] * len(texts)
        fits = [n for n, t in enumerate(texts) if self._fits(t)]
        if len(texts) == 1 and fits:
            out[0] = self._id_map[self._compact.encode(texts[0]).ids]
        elif fits:
            for n, enc in zip(fits, self._compact.encode_batch([texts[n] for n in fits]), strict=True):
                out[n] = self._id_map[enc.ids]
        rest = [n for n in range(len(texts)) if out[n] is None]
        if rest:
            for n, enc in zip(rest, self._load_full().encode_batch([texts[n] for n in rest]), strict=True):
                out[n] = np.asarray(enc.ids, dtype=np.int64)
        return out  # type: ignore[return-value]


CACHE_TOKENIZER = "compact-tokenizer.json"
CACHE_IDS = "compact-tokenizer-ids.npy"
CACHE_META = "compact-tokenizer-meta.json"


def _read_cache(folder: Path, digest: str) -> tuple[str, np.ndarray, int] | None:
    try:
        meta = json.loads((folder / CACHE_META).read_text(encoding="utf-8"))
        if meta.get("source_sha256") != digest:
            return None
        keep = np.load(folder / CACHE_IDS, allow_pickle=False)
        compact_json = (folder / CACHE_TOKENIZER).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if keep.dtype != np.int64 or keep.ndim != 1 or len(keep) != meta.get("compact_size"):
        return None
    return compact_json, keep, int(meta["vocab_size"])


def _write_cache(folder: Path, digest: str, compact_json: str, keep: np.ndarray, vocab_size: int) -> None:
    """Best effort (a read-only models folder just builds it each time); the meta file is written last,
    each file by rename, so a reader sees an old or a complete cache, never a torn one."""

    def put(name: str, write) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, folder / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    meta = {"source_sha256": digest, "vocab_size": vocab_size, "compact_size": len(keep)}
    with contextlib.suppress(OSError):
        with contextlib.suppress(FileNotFoundError):
            (folder / CACHE_META).unlink()  # invalidate first: the two data files are about to change
        put(CACHE_TOKENIZER, lambda f: f.write(compact_json.encode("utf-8")))
        put(CACHE_IDS, lambda f: np.save(f, keep, allow_pickle=False))
        put(CACHE_META, lambda f: f.write(json.dumps(meta).encode("utf-8")))


def _compact_spec(spec: dict) -> tuple[dict, list[int]] | None:
    model = spec.get("model") or {}
    post = spec.get("post_processor")
    if model.get("type") != "Unigram" or (post is not None and post.get("type") != "TemplateProcessing"):
        return None
    vocab = model["vocab"]
    special = {t["id"] for t in spec.get("added_tokens", [])}
    lowest = min(range(len(vocab)), key=lambda i: vocab[i][1])
    keep = [
        i
        for i, (piece, _score) in enumerate(vocab)
        if i in special or i == lowest or i == model.get("unk_id") or all(map(covered, piece))
    ]
    new_id = {old: new for new, old in enumerate(keep)}
    compact = json.loads(json.dumps(spec))  # a deep copy
    compact["model"]["vocab"] = [vocab[i] for i in keep]
    if model.get("unk_id") is not None:
        compact["model"]["unk_id"] = new_id[model["unk_id"]]
    for token in compact.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    if post is not None:
        for token in compact["post_processor"].get("special_tokens", {}).values():
            token["ids"] = [new_id[i] for i in token["ids"]]
    return compact, keep
