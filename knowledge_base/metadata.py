"""Document metadata, resolved in order: a sidecar ``NAME.EXT.meta.yaml``, the Markdown front matter, a
folder's ``.meta.yaml`` (nearest folder wins), a date line in the text, the folder name, else defaults."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from knowledge_base.documents import DOC_TYPES, LoadedDocument
from knowledge_base.loaders.base import LoaderError

SIDECAR_SUFFIX = ".meta.yaml"
FOLDER_META = ".meta.yaml"

# Folder (or file-name) words → document type; checked from the nearest folder outwards, then the name.
TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "objection": ("异议", "objection", "objections"),
    "battlecard": ("竞品", "battlecard", "battlecards", "competitor", "competitors"),
    "talk_track": ("话术", "talk_track", "talk_tracks", "talk-tracks", "talktracks", "scripts"),
    "policy": ("政策", "制度", "policy", "policies"),
    "case": ("案例", "case", "cases", "case_studies"),
    "product": ("产品", "product", "products"),
    "rules": ("规则", "跟进规则", "rules", "playbook"),
}
_TYPE_ZH_ALIASES = {
    "销售话术": "talk_track",
    "异议处理": "objection",
    "产品资料": "product",
    "客户案例": "case",
}

_ISO_DATE = re.compile(r"(20\d{2}|19\d{2})[-/.](\d{1,2})[-/.](\d{1,2})")
_ZH_DATE = re.compile(r"(20\d{2}|19\d{2})\s*年\s*(\d{1,2})\s*月(?:\s*(\d{1,2})\s*日)?")
_DATE_LINE = re.compile(
    r"(版本日期|生效日期|发布日期|更新日期|修订日期|日期|版本|生效|发布于|更新于|Date|Version)"
)
_COMPACT_DATE = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass(frozen=True)
class ResolvedMetadata:
    title: str
    date: str | None
    doc_type: str
    industry: str | None
    product: str | None
    visibility: tuple[str, ...]
    supersedes: str | None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LoaderError(f"元数据文件 {path.name} 格式错误：{exc}") from exc
    if not isinstance(data, dict):
        raise LoaderError(f"元数据文件 {path.name} 应为键值对（YAML 映射）")
    return data


def folder_metadata(path: Path, root: Path) -> dict:
    """``.meta.yaml`` files in the folders between ``root`` and the file; nearer folders override."""
    merged: dict = {}
    folders = [path.parent, *path.parent.parents]
    chain = []
    for folder in folders:
        chain.append(folder)
        if folder == root:
            break
    for folder in reversed(chain):
        merged.update(read_yaml(folder / FOLDER_META))
    return merged


def parse_date(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    for pattern in (_ISO_DATE, _ZH_DATE, _COMPACT_DATE):
        match = pattern.search(text)
        if match:
            try:
                return dt.date(int(match[1]), int(match[2]), int(match[3] or 1)).isoformat()
            except ValueError:
                continue
    return None


def date_from_text(text: str) -> str | None:
    """A version line near the top (``版本日期：2026-03-01``, ``2026年3月1日发布``), else the first full date."""
    head = text[:3000]
    for line in head.split("\n")[:40]:
        if _DATE_LINE.search(line):
            date = parse_date(line)
            if date:
                return date
    for pattern in (_ISO_DATE, _ZH_DATE):
        match = pattern.search(head)
        if match and (pattern is _ISO_DATE or match[3]):
            date = parse_date(match[0])
            if date:
                return date
    return None


def type_from_words(words: list[str]) -> str | None:
    for word in words:
        lowered = word.lower()
        for doc_type, keys in TYPE_WORDS.items():
            if any(key in lowered for key in keys):
                return doc_type
    return None


def normalise_type(value: object) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    if text in DOC_TYPES:
        return text
    return _TYPE_ZH_ALIASES.get(text) or type_from_words([text])


def normalise_visibility(value: object) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return ("all",)
    if isinstance(value, str):
        items = [v.strip() for v in re.split(r"[,，、\s]+", value) if v.strip()]
    elif isinstance(value, list | tuple | set):
        items = [str(v).strip() for v in value if str(v).strip()]
    else:
        items = [str(value)]
    if not items or any(v.lower() in ("all", "全部", "所有人") for v in items):
        return ("all",)
    return tuple(dict.fromkeys(items))


def resolve(doc: LoadedDocument, *, rel_path: str, sidecar: dict, folder_meta: dict) -> ResolvedMetadata:
    """Merge the sources in priority order (sidecar > front matter > folder file > text > folder name)."""
    layers = [sidecar, doc.metadata, folder_meta]

    def pick(*keys: str) -> object:
        for layer in layers:
            for key in keys:
                if layer.get(key) not in (None, ""):
                    return layer[key]
        return None

    posix = PurePosixPath(rel_path)
    title = str(pick("title", "标题") or doc.title or posix.stem).strip()
    date = (
        parse_date(pick("date", "version_date", "版本日期", "日期"))
        or parse_date(doc.date)
        or date_from_text(doc.text)
        or parse_date(posix.stem)
    )
    folders = list(reversed(posix.parts[:-1]))
    doc_type = (
        normalise_type(pick("type", "doc_type", "类型"))
        or type_from_words(folders)
        or type_from_words([posix.stem])
        or "other"
    )
    industry, product, supersedes = pick("industry", "行业"), pick("product", "产品"), pick("supersedes")
    return ResolvedMetadata(
        title=title,
        date=date,
        doc_type=doc_type,
        industry=str(industry) if industry else None,
        product=str(product) if product else None,
        visibility=normalise_visibility(pick("visibility", "teams", "可见范围")),
        supersedes=str(supersedes) if supersedes else None,
    )
