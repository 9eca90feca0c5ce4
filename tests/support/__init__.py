"""Test support code importable from every tier (``pythonpath = ["tests"]`` in pyproject)."""
