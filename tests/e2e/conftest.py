"""One real centre (`central serve` in a subprocess) for the end-to-end trials of this folder.

Each test enrols its own kiosk at its own site, so the trials share the centre's start-up but
nothing they count.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Centre

SITES = {"E2E-NET": 800, "E2E-PWR": 2000, "E2E-CLK": 30, "E2E-UPD": 400}


@pytest.fixture(scope="session")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    running = Centre(tmp_path_factory.mktemp("e2e-central"))
    running.init(SITES)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def badges(centre: Centre) -> dict[str, list[str]]:
    """Signed badge payloads of each site's cadres."""
    return {site: centre.issue_badges(site) for site in SITES}
