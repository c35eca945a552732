"""Tests that drive the page and the docs in a real headless Chromium (a package, so its conftest
does not shadow tests/service/conftest.py for modules that import from it)."""
