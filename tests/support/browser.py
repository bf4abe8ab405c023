"""Real headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core from Node, for
page tests. Skipped when Node, Chromium or playwright-core is missing (``COPILOT_TEST_PLAYWRIGHT_CORE``
points at the playwright-core package folder; ``COPILOT_TEST_CHROMIUM`` at the browser; `.ci/run`
installs both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("COPILOT_TEST_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
PW_CANDIDATES = [
    os.environ.get("COPILOT_TEST_PLAYWRIGHT_CORE", ""),
    str(REPO / "node_modules" / "playwright-core"),
    "/tmp/pw/node_modules/playwright-core",
]
PW = next((p for p in PW_CANDIDATES if p and Path(p, "package.json").exists()), None)

requires_browser = pytest.mark.skipif(
    not (shutil.which("node") and Path(CHROMIUM).exists() and PW),
    reason="needs node, chromium and playwright-core (see tests/support/browser.py)",
)


def run_node_script(script: str, tmp_path: Path, **env: str) -> dict:
    """Run a playwright-core script (it gets PW and CHROMIUM in its env) and return its last JSON line."""
    path = tmp_path / "page_test.js"
    path.write_text(script, encoding="utf-8")
    full_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PW": PW or "", "CHROMIUM": CHROMIUM,
                "NO_PROXY": "127.0.0.1", **env}  # fmt: skip
    proc = subprocess.run(["node", str(path)], env=full_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
