from tests.copilot.writeback.conftest import make_suggestion  # noqa: F401  (the same fixture here)
