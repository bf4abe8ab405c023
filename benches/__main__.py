"""`make bench`: run every benchmark module in this folder and print its figures.

Each module exposes ``main()`` and prints its own figures and ratios against a baseline
measured in the same run. ``python -m benches chat`` runs one.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or n.removeprefix("bench_") in argv]
    failed = 0
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"benches.{name}").main()
        except Exception as exc:  # one broken bench must not hide the others' figures
            failed += 1
            print(f"{name} failed: {type(exc).__name__}: {exc}")
        print(f"({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
