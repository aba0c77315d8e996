"""Backup and restore of the centre, with kiosks sending again what a restore lost (issue 16,
part 2), on SQLite and on PostgreSQL.

A centre serves two kiosks (the real sync agent over HTTP). `central backup` runs while it
serves; the kiosks go on scanning and pushing, and the centre acknowledges it all. Then the
centre is lost, a new instance is made, the backup restored into it, and the kiosks talk to the
new one: they send again everything after the backup (the heartbeat's `resend_after`), and the
restored centre ends with every record of every kiosk, once, its chains whole and its stays
paired, exactly as a centre that never failed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from central import kiosks
from central.db import schema
from central.keys import load_centre_key
from sync.agent import AgentTuning, SyncAgent
from sync.centre_key import PinnedKey
from sync.client import CentralClient
from tests.e2e.harness import CENTRAL_CMD, REPO
from tests.scale.cluster import Cluster, KioskLog, fresh_database

SITES = ("BK01", "BK02")
CADRES = 20
SETTINGS = {"repeat_window_s": 1}


@contextlib.contextmanager
def two_databases(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    with fresh_database(server) as first, fresh_database(server) as second:
        yield first.url, second.url


def central(instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CENTRAL_CMD, "--instance", str(instance), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sync_until(agents: dict[str, SyncAgent], done: object, timeout_s: float = 90) -> None:
    """Full cycles (push, pull, heartbeat) of every kiosk until `done()` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        for agent in agents.values():
            agent.run_cycle(full=True)
        if done():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            errors = {k: a.snapshot().last_error for k, a in agents.items()}
            raise AssertionError(f"not done within {timeout_s} s: {errors}")
        time.sleep(0.2)


def scan(log: KioskLog, numbers: range, kind: str, badges: dict[str, tuple[str, int]]) -> None:
    for n in numbers:
        cadre = f"{log.identity.site_id}-{n}"
        log.record(cadre, kind, badges[cadre])


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_centre_restored_from_an_older_backup_gets_back_every_record(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with two_databases(kind, tmp_path, request) as (first_url, second_url):
        first = Cluster(tmp_path / "first", first_url, SETTINGS)
        first.init({site: CADRES for site in SITES})
        now = datetime.now(UTC)
        logs: dict[str, KioskLog] = {}
        tokens: dict[str, str] = {}
        for site in SITES:
            code = kiosks.add_kiosk(
                first.engine, site, now, timedelta(hours=1), kiosk_id=f"{site}-K"
            )
            identity, _, token = kiosks.enrol(first.engine, code.code, now)
            logs[identity.kiosk_id], tokens[identity.kiosk_id] = KioskLog(identity), token
        badges = {site: first.badges(site) for site in SITES}
        pinned = load_centre_key(first.settings.centre_key_path(first.instance)).public_key()

        def agents_to(url: str) -> dict[str, SyncAgent]:
            return {
                kiosk_id: SyncAgent(
                    log,
                    # Pinned, as a kiosk in service: a restored centre must sign with the key.
                    CentralClient(url, tokens[kiosk_id], timeout_s=30, pinned=PinnedKey(pinned)),
                    kiosk_id,
                    log.boot_id,
                    tuning=AgentTuning(batch_size=7),
                )
                for kiosk_id, log in logs.items()
            }

        def all_sent() -> bool:
            return all(log.pending_count() == 0 for log in logs.values())

        backup, keys = tmp_path / "backup" / "centre.backup", tmp_path / "keys" / "centre.keys"
        backup.parent.mkdir()
        keys.parent.mkdir()
        try:
            first.start(1)
            agents = agents_to(first.processes[0].url)
            for log in logs.values():
                scan(log, range(0, 10), "arrival", badges[log.identity.site_id])
            sync_until(agents, all_sent)
            made = central(first.instance, "backup", "--out", str(backup), "--keys-out", str(keys))
            assert made.returncode == 0, made.stderr
            assert "wrote the keys" in made.stdout
            at_backup = {k: log.acknowledged_seq for k, log in logs.items()}
            # After the backup: more arrivals, and departures of records from before it.
            for log in logs.values():
                scan(log, range(10, CADRES), "arrival", badges[log.identity.site_id])
            time.sleep(1.1)  # the repeat window
            for log in logs.values():
                scan(log, range(0, 5), "departure", badges[log.identity.site_id])
            sync_until(agents, all_sent)
            # The first centre has every record; then it is lost.
            with first.engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(schema.events)).scalar() == (
                    sum(len(log.events) for log in logs.values())
                )
            refused = central(first.instance, "restore", str(backup))
            assert refused.returncode != 0 and "not empty" in refused.stderr
        finally:
            first.stop()

        for path in (backup, keys):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with tarfile.open(backup) as archive:
            names = archive.getnames()
            dumped = b"".join(
                archive.extractfile(m).read()
                for m in archive.getmembers()
                if m.isfile()  # type: ignore[union-attr]
            )
        key_bytes = first.settings.issuing_key_path(first.instance).read_bytes()
        assert "manifest.json" in names and key_bytes not in dumped

        second = Cluster(tmp_path / "second", second_url, SETTINGS)
        assert central(second.instance, "init").returncode == 0
        restored = central(second.instance, "restore", str(backup), "--keys", str(keys))
        assert restored.returncode == 0, restored.stderr
        assert "restored the issuing key" in restored.stdout
        assert second.settings.issuing_key_path(second.instance).read_bytes() == key_bytes
        assert "kept the instance's own centre_key.pem" in restored.stdout
        with second.engine.connect() as conn:
            heads = dict(
                conn.execute(select(schema.kiosks.c.kiosk_id, schema.kiosks.c.chain_seq)).all()
            )
        assert heads == at_backup  # the backup is older than the kiosks' last push

        try:
            second.start(1)
            agents = agents_to(second.processes[0].url)
            for log in logs.values():
                scan(log, range(5, 8), "departure", badges[log.identity.site_id])

            def whole() -> bool:
                with second.engine.connect() as conn:
                    rows = dict(
                        conn.execute(
                            select(schema.kiosks.c.kiosk_id, schema.kiosks.c.chain_seq)
                        ).all()
                    )
                    queued = conn.execute(
                        select(func.count()).select_from(schema.stays_dirty)
                    ).scalar()
                return queued == 0 and all(rows[k] == len(log.events) for k, log in logs.items())

            sync_until(agents, whole)
        finally:
            second.stop()

        engine = second.engine
        with engine.connect() as conn:
            stored = conn.execute(select(schema.events.c.event_id, schema.events.c.kiosk_id)).all()
            gaps = conn.execute(
                select(func.count())
                .select_from(schema.anomalies)
                .where(
                    schema.anomalies.c.kind == "chain_gap", schema.anomalies.c.resolved_at.is_(None)
                )
            ).scalar()
            stays = conn.execute(select(schema.stays.c.cadre_id, schema.stays.c.state)).all()
        made_ids = sorted(str(e.event_id) for log in logs.values() for e in log.events)
        assert sorted(r.event_id for r in stored) == made_ids  # every record, once
        assert gaps == 0
        by_cadre = {r.cadre_id: r.state for r in stays}
        assert len(stays) == len(SITES) * CADRES  # one stay per cadre, none twice
        for site in SITES:
            for n in range(CADRES):
                assert by_cadre[f"{site}-{n}"] == ("closed" if n < 8 else "open"), (site, n)
        for agent in agents.values():
            agent.stop()
        engine.dispose()
        first.engine.dispose()


def test_restore_says_loudly_when_the_issuing_key_is_not_the_backups(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert central(first, "init").returncode == 0
    made = central(first, "backup", "--out", str(tmp_path / "b.backup"))
    assert made.returncode == 0
    assert "WARNING" in made.stderr and "issuing key" in made.stderr
    assert central(second, "init").returncode == 0  # a key of its own, not the backup's
    restored = central(second, "restore", str(tmp_path / "b.backup"))
    assert restored.returncode == 0, restored.stderr
    assert "WARNING" in restored.stderr and "NOT the one" in restored.stderr
    again = central(second, "restore", str(tmp_path / "b.backup"))
    assert again.returncode == 0  # an empty store stays empty: restoring it again is allowed
    not_a_backup = tmp_path / "x.backup"
    not_a_backup.write_bytes(b"hello")
    bad = central(second, "restore", str(not_a_backup))
    assert bad.returncode != 0 and "not a backup" in bad.stderr
