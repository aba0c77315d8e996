"""The centre's CPU per push of one event, in process: authenticate the kiosk, then ingest.

At dawn nearly every push carries one check-in, so what the centre spends per push, not per
event, decides how many check-ins a second one process keeps up with (bench/dawn.py shows the
queue that forms when it does not). This runs the two steps of the kiosk API's push route
without HTTP on PostgreSQL: 25 kiosks, 1,500 check-ins with badge proofs, each in its own push,
stays queued for the duty as the API does. Printed: CPU (this process: Python, SQLAlchemy and
psycopg) and wall time per push, and the statements per push.

    CADRE_TEST_POSTGRES_URL=$(scripts/start-test-postgres.sh) .venv/bin/python bench/push_cost.py

Compare runs made one after the other on a quiet machine; for a baseline, copy this file into a
worktree of an older revision and run it there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text

from central import kiosks
from central.badges import issue_badges
from central.db.engine import create_schema, make_engine
from central.ingest.proofs import BadgeProofs
from central.ingest.push import Checks, ingest_events
from sync.badge_token import key_id_of
from tests.badges import TEST_KEY
from tests.sync.helpers import RULES, T0, MemoryLog, enrolled, load_roster

try:
    from central.db.engine import reading
except ImportError:  # a revision before it, run for a baseline: reads in a transaction

    def reading(engine: Any) -> Any:  # type: ignore[no-redef]
        return engine.connect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=1500)
    parser.add_argument("--kiosks", type=int, default=25)
    parser.add_argument("--server-url", default=os.environ.get("CADRE_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    if not args.server_url:
        sys.exit("needs PostgreSQL: --server-url or $CADRE_TEST_POSTGRES_URL")
    schema = f"push_cost_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.server_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(
        args.server_url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=4
    )
    try:
        create_schema(engine)
        per_site = -(-args.pushes // args.kiosks)
        sites = {
            f"S{s:03d}": [f"C{s:03d}{n:04d}" for n in range(per_site)] for s in range(args.kiosks)
        }
        load_roster(engine, sites)
        printed = {b.cadre_id: b.payload for b in issue_badges(engine, TEST_KEY, today=T0.date())}
        made = [enrolled(engine, site) for site in sites]
        logs = [MemoryLog(kiosk_id, site) for (kiosk_id, _), site in zip(made, sites, strict=True)]
        checks = Checks(
            BadgeProofs.of_keys({key_id_of(TEST_KEY.public_key()): TEST_KEY.public_key()})
        )
        rosters = list(sites.values())
        plan: list[tuple[str, dict[str, Any], datetime]] = []
        for i in range(args.pushes):
            k = i % args.kiosks
            cadre_id = rosters[k][i // args.kiosks]
            at = T0 + timedelta(seconds=i)
            record = logs[k].record(cadre_id, "arrival", at, badge_token=printed[cadre_id])
            plan.append((made[k][1], record.wire(), at + timedelta(seconds=1)))

        def push(token: str, wire: dict[str, Any], at: datetime) -> None:
            with reading(engine) as conn:
                kiosk = kiosks.authenticate(conn, token)
            assert kiosk is not None
            ingest_events(engine, kiosk, [wire], at, RULES, defer_stays=True, checks=checks)

        warm = min(100, args.pushes // 10)
        for item in plan[:warm]:
            push(*item)
        statements = [0]

        def count_statement(*_: object) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count_statement)
        cpu, wall = time.process_time(), time.perf_counter()
        for item in plan[warm:]:
            push(*item)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = len(plan) - warm
        print(
            f"{n} pushes of one check-in: CPU {cpu / n * 1000:.2f} ms per push, wall "
            f"{wall / n * 1000:.2f} ms; {statements[0] / n:.1f} statements per push (load "
            f"{os.getloadavg()[0]:.1f})"
        )
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
