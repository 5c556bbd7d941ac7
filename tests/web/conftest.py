"""Fixtures of the web tests: a real hub process, a stand-in for the built front end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dosi.twin.hubproc import EmbeddedHub


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedHub]:
    """`dosi up` in its own process on a fresh SQLite data dir."""
    with EmbeddedHub(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A stand-in for the built front end: index.html, a hashed bundle, a favicon."""
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>dosi</title>", encoding="utf-8")
    (static / "assets" / "index-3f2a1b.js").write_text("console.log(1)", encoding="utf-8")
    (static / "favicon.svg").write_text("<svg/>", encoding="utf-8")
    return static
