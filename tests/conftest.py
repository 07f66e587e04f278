"""Fixtures shared by the test modules: a Click runner and a small-file writer."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner():
    """In-process CLI runner (stderr kept apart from stdout)."""
    return CliRunner()


@pytest.fixture
def tmp_csv(tmp_path):
    """``tmp_csv(text_or_bytes, name="data.csv")`` writes a file under tmp_path, returns its path."""

    def write(content: str | bytes, name: str = "data.csv"):
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write
