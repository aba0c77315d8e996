"""The staff pages, one module per area. Importing a module attaches its routes to `staff`."""

from __future__ import annotations


def load_views() -> None:
    from central.web.views import (  # noqa: F401
        account,
        accounts,
        alerts,
        anomalies,
        api_tokens,
        cadres,
        corrections,
        exports,
        jobs,
        kiosks,
        live,
        overview,
        photos,
        roster,
    )
