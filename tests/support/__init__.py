"""Helpers shared by the test suite (servers on 127.0.0.1)."""
