"""The README stays true: its set-up commands exist and every `copilot …` command it shows is real."""

import re
from pathlib import Path

from typer.main import get_command

from copilot.cli.main import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> set[tuple[str, ...]]:
    root = get_command(app)
    found = set()
    for name, cmd in root.commands.items():
        found.add((name,))
        for sub in getattr(cmd, "commands", {}):
            found.add((name, sub))
    return found


def test_readme_shows_the_two_setup_commands_and_the_makefile_has_them():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "make run" in README and "make test" in README
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_copilot_command_in_the_readme_exists():
    known = _commands()
    shown = re.findall(r"^\s*(?:[A-Z_]+=\S+\s+)*copilot ((?:[a-z-]+)(?: [a-z-]+)?)", README, re.M)
    assert shown
    for words in shown:
        parts = tuple(words.split())
        assert parts[:1] in known or parts in known, f"README shows unknown command: copilot {words}"
        if len(parts) == 2 and (parts[0],) in known and any(k[0] == parts[0] and len(k) == 2 for k in known):
            assert parts in known, f"README shows unknown sub-command: copilot {words}"


def test_every_env_var_in_the_readme_is_a_setting(monkeypatch):
    from copilot.settings import Settings

    names = set(re.findall(r"`((?:COPILOT|OPENAI)_[A-Z_]+)`", README))
    assert {"COPILOT_HOME", "COPILOT_DATABASE_URL", "OPENAI_API_KEY", "COPILOT_WECOM_AES_KEY"} <= names
    switches = {
        "COPILOT_HTTPS": "true",
        "COPILOT_API_DOCS": "false",
        "COPILOT_RATE_LIMITS": "true",
    }  # tests run with it off
    numbers = ("_BYTES", "_SECONDS", "_MINUTES", "_HOURS", "_DAYS")
    for name in sorted(names):
        before = str(Settings().model_dump())
        value = switches.get(name) or ("424242" if name.endswith(numbers) else f"v-{name.lower()}")
        monkeypatch.setenv(name, value)
        after = str(Settings().model_dump())
        read = after != before if name in switches else value in after
        assert read, f"{name} is documented but no setting reads it"


def test_readme_links_work_in_a_plain_clone():
    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "SECURITY.md", "copilot/demo/README.md", "tests/README.md"):
        text = (root / doc).read_text(encoding="utf-8")
        assert "../shared" not in text, f"{doc} points outside the repository"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (root / doc).parent.joinpath(target).exists(), f"{doc}: broken link {target}"


def test_readme_examples_capture_ids_instead_of_placeholders():
    quick = README.split("## 5 分钟上手", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert "memo_…" not in quick.replace('"memo_…"', "") and "sg_…" not in quick and "2026-11-20" not in quick
    assert "MEMO=$(" in quick and "SG=$(" in quick
