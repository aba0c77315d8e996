"""Backups of the central store, and restoring one into an empty instance.

A backup is one tar file: `manifest.json` (what it holds: the engine, when, rows per table, each
kiosk's stored chain head, the fingerprint of the issuing key in use) and the database, taken
while the centre runs: SQLite through its online backup API (a consistent copy however busy the
writers), PostgreSQL with `pg_dump --format=custom` (one snapshot transaction).

The keys are NOT in it. The issuing key signs badges; the centre key signs every answer to a
kiosk; with them, a stolen backup could print valid badges and speak as the centre. So they go,
on request, into a separate keys file (mode 0600) to be kept apart: `central backup --keys-out
FILE`. A centre restored without its issuing key cannot issue badges that kiosks accept, nor
check the badges already printed; without its centre key every enrolled kiosk refuses its
answers (they pinned it): `central restore --keys FILE` puts both back, and restore says loudly
when the instance's issuing key is not the backup's.

Restore refuses an instance whose database holds anything (a restore never merges). After it,
the kiosks send again what the centre lost since the backup: each heartbeat says how far the
kiosk's log has been acknowledged, the centre answers where its stored chain of that kiosk ends
when that is behind, and the kiosk rewinds its cursor there (sync/agent.py). Kiosks enrolled
after the backup are unknown to the restored centre and must be enrolled again.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from central import kiosks
from central.db.engine import create_schema, make_engine
from central.db.schema import kiosks as kiosks_table
from central.db.schema import metadata, roster_counter
from central.keys import rotations_path
from central.serve import ServeRefused, sqlite_single_server
from central.settings import CentralSettings
from central.web.security import SECRET_FILE

FORMAT = "cadre-central-backup"
KEYS_FORMAT = "cadre-central-keys"
VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite"
PG_MEMBER = "database.pgdump"


class BackupError(Exception):
    """A backup or restore could not be done; the message says why and what to do."""


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    key_state: str  # restored | same | missing | different
    notes: list[str] = field(default_factory=list)


# --- where things are -----------------------------------------------------------------------


def _url(settings: CentralSettings, instance: Path) -> URL:
    return make_url(settings.database_url_for(instance))


def _engine_kind(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise BackupError(f"cannot back up a {backend} database")
    return backend


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("the database is in memory: nothing to back up")
    return Path(url.database)


def libpq_url(url: URL) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore read it (no driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return candidates[-1]


def key_files(settings: CentralSettings, instance: Path) -> list[Path]:
    """The secrets kept out of the backup: the issuing key (and its retired public keys beside
    it), the centre key (and its signed rotations), which every enrolled kiosk pinned, so a
    centre restored without it is refused by all of them, and the staff session secret."""
    key = settings.issuing_key_path(instance)
    found = [key] if key.exists() else []
    found += sorted(key.parent.glob(key.name + ".retired-*"))
    centre_key = settings.centre_key_path(instance)
    found += [p for p in (centre_key, rotations_path(centre_key)) if p.exists()]
    secret = instance / SECRET_FILE
    if secret.exists():
        found.append(secret)
    return found


def key_fingerprint(settings: CentralSettings, instance: Path) -> str | None:
    """What kiosks pin of the issuing keys (the pull answer's keys version); None: no key."""
    if not settings.issuing_key_path(instance).exists():
        return None
    answer = kiosks.keys_answer(settings.issuing_key_path(instance))
    return answer.version if answer.keys else None


# --- backup ---------------------------------------------------------------------------------


def _counts(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        rows = {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
            if t.name in present
        }
        heads = {
            r.kiosk_id: int(r.chain_seq)
            for r in conn.execute(select(kiosks_table.c.kiosk_id, kiosks_table.c.chain_seq))
        }
    return rows, heads


def _private_file(path: Path) -> io.BufferedWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file of that name keeps its mode otherwise
    return os.fdopen(fd, "wb")


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))


def backup(
    settings: CentralSettings, instance: Path, out: Path, keys_out: Path | None = None
) -> dict[str, Any]:
    """Write a backup of the instance's database to `out` (mode 0600); with `keys_out`, the
    keys to a separate file (mode 0600). Returns the manifest."""
    url = _url(settings, instance)
    kind = _engine_kind(url)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        rows, heads = _counts(engine)
    finally:
        engine.dispose()
    partial = out.with_name(out.name + ".partial")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as work:
        dump = Path(work) / "dump"
        if kind == "sqlite":
            source = sqlite3.connect(f"file:{_sqlite_file(url)}?mode=ro", uri=True)
            target = sqlite3.connect(dump)
            try:
                with target:
                    source.backup(target)
            finally:
                source.close()
                target.close()
            member = SQLITE_MEMBER
        else:
            _run(
                [
                    pg_tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={dump}",
                    f"--dbname={libpq_url(url)}",
                ],
                "pg_dump",
            )
            member = PG_MEMBER
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "engine": kind,
            "database": member,
            "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": rows,
            "kiosk_chain_heads": heads,
            "issuing_key_fingerprint": key_fingerprint(settings, instance),
            "keys_included": False,
        }
        with _private_file(partial) as handle, tarfile.open(fileobj=handle, mode="w") as archive:
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=1).encode())
            info = archive.gettarinfo(str(dump), arcname=member)
            info.mode = 0o600
            with dump.open("rb") as data:
                archive.addfile(info, data)
        partial.replace(out)
    if keys_out is not None:
        write_keys(settings, instance, keys_out)
    return manifest


def write_keys(settings: CentralSettings, instance: Path, out: Path) -> list[str]:
    found = key_files(settings, instance)
    if not any(p == settings.issuing_key_path(instance) for p in found):
        raise BackupError(f"no issuing key at {settings.issuing_key_path(instance)}")
    partial = out.with_name(out.name + ".partial")
    names = [p.name for p in found]
    manifest = {
        "format": KEYS_FORMAT,
        "version": VERSION,
        "issuing_key": settings.issuing_key_path(instance).name,
        "centre_key": settings.centre_key_path(instance).name,
        "centre_key_rotations": rotations_path(settings.centre_key_path(instance)).name,
        "files": names,
        "issuing_key_fingerprint": key_fingerprint(settings, instance),
    }
    with _private_file(partial) as handle, tarfile.open(fileobj=handle, mode="w") as archive:
        _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=1).encode())
        for path in found:
            _add_bytes(archive, f"keys/{path.name}", path.read_bytes())
    partial.replace(out)
    return names


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {' / '.join(detail[-3:]) or done.returncode}")


# --- restore --------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(path: Path, expected: str) -> Iterator[tuple[tarfile.TarFile, dict[str, Any]]]:
    try:
        archive = tarfile.open(path, mode="r")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{path} is not a backup of the centre: {exc}") from exc
    with archive:
        try:
            member = archive.extractfile(MANIFEST)
            manifest = json.loads(member.read()) if member else None
        except (KeyError, ValueError) as exc:
            raise BackupError(f"{path} is not a backup of the centre (no manifest)") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != expected:
            raise BackupError(f"{path} is not a {expected} file")
        if manifest.get("version") != VERSION:
            raise BackupError(f"{path}: version {manifest.get('version')} of {expected} unknown")
        yield archive, manifest


def read_manifest(path: Path) -> dict[str, Any]:
    with _opened(path, FORMAT) as (_, manifest):
        return manifest


def holds_data(engine: Engine) -> list[str]:
    """The tables of the store that hold rows (the roster counter's seed row aside)."""
    full = []
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            if table is roster_counter:
                version = conn.execute(select(func.max(roster_counter.c.version))).scalar()
                if version:
                    full.append(table.name)
                continue
            if conn.execute(select(table).limit(1)).first() is not None:
                full.append(table.name)
    return full


def restore(
    settings: CentralSettings, instance: Path, source: Path, keys: Path | None = None
) -> RestoreReport:
    url = _url(settings, instance)
    kind = _engine_kind(url)
    with _opened(source, FORMAT) as (archive, manifest):
        if manifest["engine"] != kind:
            raise BackupError(
                f"the backup is of a {manifest['engine']} database and this instance uses "
                f"{kind}: restore it into a {manifest['engine']} instance"
            )
        engine = make_engine(url.render_as_string(hide_password=False))
        try:
            full = holds_data(engine)
        finally:
            engine.dispose()
        if full:
            raise BackupError(
                f"the database of {instance} is not empty (rows in {', '.join(full[:6])}): "
                "restore only into an empty one, never over a centre in use"
            )
        instance.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=instance) as work:
            archive.extract(manifest["database"], work, filter="data")
            dump = Path(work) / manifest["database"]
            if kind == "sqlite":
                # The lock `central serve` holds on an SQLite store: never restore under it.
                try:
                    with sqlite_single_server(_sqlite_file(url).resolve()):
                        _restore_sqlite(dump, _sqlite_file(url))
                except ServeRefused as exc:
                    raise BackupError(f"stop the centre first: {exc}") from exc
            else:
                _run(
                    [
                        pg_tool("pg_restore"),
                        "--no-owner",
                        "--no-privileges",
                        "--clean",
                        "--if-exists",
                        "--single-transaction",
                        "--exit-on-error",
                        f"--dbname={libpq_url(url)}",
                        str(dump),
                    ],
                    "pg_restore",
                )
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        create_schema(engine)  # tables and columns newer than the backup
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    report = RestoreReport(manifest, "missing")
    if keys is not None:
        report.notes += restore_keys(settings, instance, keys, manifest)
    mine = key_fingerprint(settings, instance)
    wanted = manifest.get("issuing_key_fingerprint")
    if keys is not None:
        report.key_state = "restored"
    elif mine is None:
        report.key_state = "missing"
    else:
        report.key_state = "same" if mine == wanted else "different"
    return report


def _restore_sqlite(dump: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
    into = sqlite3.connect(target)
    try:
        check = source.execute("PRAGMA integrity_check").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"the backup's database is damaged: {check}")
        with into:
            source.backup(into)
    finally:
        source.close()
        into.close()


def restore_keys(
    settings: CentralSettings, instance: Path, keys: Path, manifest: dict[str, Any]
) -> list[str]:
    """Put the keys file's keys into the instance. A key the instance made itself (`central
    init` before the restore) is kept aside, renamed, never deleted."""
    notes = []
    with _opened(keys, KEYS_FORMAT) as (archive, key_manifest):
        wanted = manifest.get("issuing_key_fingerprint")
        if wanted and key_manifest.get("issuing_key_fingerprint") != wanted:
            raise BackupError(
                f"{keys} holds another issuing key than the one in use when the backup was made"
            )
        issuing = settings.issuing_key_path(instance)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for name in key_manifest["files"]:
            if "/" in name or name.startswith("."):
                raise BackupError(f"{keys}: unexpected file name {name!r}")
            member = archive.extractfile(f"keys/{name}")
            if member is None:
                raise BackupError(f"{keys}: {name} missing")
            data = member.read()
            centre_key = settings.centre_key_path(instance)
            if name == key_manifest["issuing_key"]:
                target = issuing
            elif name == key_manifest.get("centre_key"):
                target = centre_key
            elif name == key_manifest.get("centre_key_rotations"):
                target = rotations_path(centre_key)
            else:
                target = instance / name
            if target.exists() and target.read_bytes() != data:
                aside = target.with_name(f"{target.name}.before-restore-{stamp}")
                target.replace(aside)
                notes.append(f"kept the instance's own {target.name} as {aside.name}")
            with _private_file(target) as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
    return notes
