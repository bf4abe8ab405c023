"""One loader per format, all ``load(path: Path) -> LoadedDocument``; chosen by file extension."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from knowledge_base.documents import LoadedDocument
from knowledge_base.loaders import docx, html, md, pdf, tables, txt
from knowledge_base.loaders.base import LoaderError

Loader = Callable[[Path], LoadedDocument]

LOADERS: dict[str, Loader] = {
    ".md": md.load,
    ".markdown": md.load,
    ".txt": txt.load,
    ".text": txt.load,
    ".html": html.load,
    ".htm": html.load,
    ".pdf": pdf.load,
    ".docx": docx.load,
    ".csv": tables.load_csv,
    ".xlsx": tables.load_xlsx,
}

SUPPORTED_EXTENSIONS = tuple(sorted(LOADERS))


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def load_document(path: Path) -> LoadedDocument:
    """Load any supported file; raises ``LoaderError`` with a Chinese reason otherwise."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoaderError(
            f"不支持的文件格式 {path.suffix or '（无扩展名）'}；支持：{'、'.join(SUPPORTED_EXTENSIONS)}"
        )
    if not path.is_file():
        raise LoaderError("文件不存在或不是普通文件")
    try:
        return loader(path)
    except LoaderError:
        raise
    except Exception as exc:  # a malformed file may trip any parser: report it, never abort the batch
        raise LoaderError(f"文件无法解析（{type(exc).__name__}：{exc}）") from exc


__all__ = ["LOADERS", "SUPPORTED_EXTENSIONS", "LoaderError", "is_supported", "load_document"]
