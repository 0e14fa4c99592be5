"""Real services the tests start themselves (fixtures registered in tests/conftest.py)."""
