"""Shared by unit and e2e tests: this directory is on sys.path (pytest prepends a rootdir conftest's folder)."""
