"""Fixtures of the integration tests."""

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each backend, for tests that run over both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'renewals.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
