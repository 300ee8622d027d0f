"""The operations center on a synthetic three-station network, with one user of each role."""

from __future__ import annotations

import pytest
from support.webapp import serve_network


@pytest.fixture
def served(tmp_path):
    yield from serve_network(tmp_path)
