"""Fixtures of the twin tests: a real hub process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dosi.twin.hubproc import EmbeddedHub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedHub]:
    """`dosi up` in its own process on a fresh SQLite data dir, as `dosi twin run` starts it."""
    with EmbeddedHub(tmp_path_factory.mktemp("hub")) as running:
        yield running
