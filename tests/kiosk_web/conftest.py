"""Fixtures of the kiosk web tests; the helpers live in helpers.py."""

from __future__ import annotations

import pytest

from tests.kiosk_web.helpers import make_kit


@pytest.fixture
def kit(tmp_path, issuing_key):
    made = make_kit(tmp_path, issuing_key)
    yield made
    made.services.stop()
