"""Heartbeats: the latest report of each kiosk, and the clock samples it carries."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from central.db.bulk import dialect_insert, write_transaction
from central.db.schema import kiosk_status
from central.ingest.clocks import apply_clock_samples
from central.ingest.timeclaims import DEFAULT_TIME_TOLERANCE
from central.kiosks import KioskIdentity
from central.stays.pairing import StayRules
from central.timefix import to_utc_naive
from sync.protocol import Heartbeat


def record_heartbeat(
    engine: Engine,
    kiosk: KioskIdentity,
    beat: Heartbeat,
    now: datetime,
    rules: StayRules,
    tolerance: timedelta = DEFAULT_TIME_TOLERANCE,
) -> None:
    """Keep the kiosk's latest heartbeat and take in the clock samples it carries."""
    now_utc = to_utc_naive(now)
    values = {
        "received_at": now_utc,
        "app_version": beat.app_version,
        "queue_length": beat.queue_length,
        "last_scan_at": to_utc_naive(beat.last_scan_at) if beat.last_scan_at else None,
        "camera_ok": beat.camera.ok,
        "camera_detail": beat.camera.detail,
        "clock_trusted": beat.clock.trusted,
        "clock_offset_s": beat.clock.offset_s,
        "boot_id": beat.clock.boot_id,
        "disk_free_bytes": beat.disk_free_bytes,
        "ready": beat.ready,
        "ready_detail": beat.ready_detail,
        "report": beat.model_dump_json(),
    }
    with write_transaction(engine) as conn:
        statement = dialect_insert(conn, kiosk_status).values(kiosk_id=kiosk.kiosk_id, **values)
        conn.execute(statement.on_conflict_do_update(index_elements=["kiosk_id"], set_=values))
        apply_clock_samples(conn, kiosk, beat.clock.samples, now, rules, tolerance)
