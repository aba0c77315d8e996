"""Anomalies: what the centre's checks find, as rows of the `anomalies` table.

Ingest (central/ingest/) writes chain gaps and forks, reused event ids, rejected events and
uncorrected clocks; the stays code (central/stays/) writes what pairing finds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def anomaly_row(kind: str, now: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "kind": kind,
        "kiosk_id": None,
        "site_id": None,
        "cadre_id": None,
        "service_day": None,
        "event_id": None,
        "seq": None,
        "boot_id": None,
        "detail": "",
        "detected_at": now,
        "resolved_at": None,
    }
    row.update(values)
    return row
