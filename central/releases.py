"""Kiosk releases at the centre: `central release add|list|widen|halt`, the offer in each pull
answer, the wheel download, and the rollout duty.

A release is a wheel of the kiosk package that the centre key signs (sync/releases.py) and
offers to some kiosks first: those of named sites, or a percentage of all kiosks. Which kiosks a
percentage reaches is fixed by each kiosk's id (a bucket 0-99 from its sha256), so widening from
5% to 20% keeps the first 5% and adds more, and the same kiosks go first in every release.

A kiosk is offered the newest release that reaches it and is not halted. The rollout duty
(under the centre's lease, one process at a time) halts a release as soon as
`release_halt_rollbacks` kiosks report they switched back from it: no more kiosks take it until
staff look (`central release widen` offers it again).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select, update

from central.db.schema import kiosk_status, kiosks, releases
from central.duties import Duty
from central.kiosks import KioskIdentity
from central.timefix import to_utc_naive
from sync.releases import (
    PACKAGE_NAME,
    ReleaseManifest,
    SignedRelease,
    parse_version,
    sha256_of,
    sign_release,
    wheel_version,
)

RELEASES_FOLDER = "releases"
DUTY_NAME = "release-rollout"


class ReleaseError(ValueError):
    """A release that cannot be added or changed; str() says why."""


@dataclass(frozen=True)
class Release:
    version: str
    wheel_name: str
    sha256: str
    size: int
    sites: tuple[str, ...]
    percent: int
    state: str
    state_detail: str
    created_at: datetime
    signed: SignedRelease

    def reaches(self, kiosk: KioskIdentity) -> bool:
        if self.state != "offered":
            return False
        if self.sites:
            return kiosk.site_id in self.sites
        return bucket(kiosk.kiosk_id) < self.percent

    def target_text(self) -> str:
        return f"sites {' '.join(self.sites)}" if self.sites else f"{self.percent}% of kiosks"


def bucket(kiosk_id: str) -> int:
    """0-99, fixed per kiosk: which wave of a percentage rollout it belongs to."""
    return int.from_bytes(hashlib.sha256(f"release-wave|{kiosk_id}".encode()).digest()[:4]) % 100


def wheel_path(instance: Path, sha256: str) -> Path:
    return instance / RELEASES_FOLDER / f"{sha256}.whl"


def _release(row: object) -> Release:
    r = row._mapping  # type: ignore[attr-defined]
    return Release(
        version=r["version"],
        wheel_name=r["wheel_name"],
        sha256=r["sha256"],
        size=r["size"],
        sites=tuple(r["sites"].split()),
        percent=r["percent"],
        state=r["state"],
        state_detail=r["state_detail"],
        created_at=r["created_at"],
        signed=SignedRelease.model_validate_json(r["signed"]),
    )


def all_releases(conn: Connection) -> list[Release]:
    found = [_release(r) for r in conn.execute(select(releases)).all()]
    return sorted(found, key=lambda r: parse_version(r.version), reverse=True)


def _check_target(sites: tuple[str, ...], percent: int | None) -> tuple[tuple[str, ...], int]:
    if sites and percent is not None:
        raise ReleaseError("name sites or a percentage, not both")
    if not sites and percent is None:
        raise ReleaseError("say whom to offer it to: --site S (repeatable) or --percent N")
    if percent is not None and not 0 <= percent <= 100:
        raise ReleaseError(f"--percent must be 0-100, not {percent}")
    return sites, percent or 0


def add_release(
    engine: Engine,
    instance: Path,
    key: Ed25519PrivateKey,
    wheel: Path,
    now: datetime,
    *,
    sites: tuple[str, ...] = (),
    percent: int | None = None,
    by: str = "",
) -> Release:
    """Sign `wheel` with the centre key, keep a copy, offer it. ReleaseError, with nothing
    stored, when the file is not a wheel of the kiosk package or its version is known."""
    sites, percent_value = _check_target(tuple(dict.fromkeys(sites)), percent)
    if not wheel.is_file():
        raise ReleaseError(f"{wheel}: no such file")
    try:
        name, version = wheel_version(wheel.name)
        parse_version(version)
    except ValueError as exc:
        raise ReleaseError(f"{wheel.name}: {exc}") from exc
    if name.replace("_", "-").lower() != PACKAGE_NAME:
        raise ReleaseError(f"{wheel.name} is a wheel of {name}, not of {PACKAGE_NAME}")
    with engine.connect() as conn:
        if conn.execute(select(releases.c.version).where(releases.c.version == version)).first():
            raise ReleaseError(f"release {version} exists already: build a new version")
        known_sites = {s for (s,) in conn.execute(select(kiosks.c.site_id).distinct())}
    unknown = [s for s in sites if s not in known_sites]
    if unknown:
        raise ReleaseError(f"no kiosk is enrolled at site(s) {', '.join(unknown)}")
    digest = sha256_of(wheel)
    manifest = ReleaseManifest(
        version=version,
        wheel=wheel.name,
        size=wheel.stat().st_size,
        sha256=digest,
        made_at=now,
    )
    signed = sign_release(key, manifest)
    target = wheel_path(instance, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(wheel, temp)
    if sha256_of(temp) != digest:  # changed while we read it
        temp.unlink()
        raise ReleaseError(f"{wheel} changed while it was copied: try again")
    temp.replace(target)
    stamp = to_utc_naive(now)
    with engine.begin() as conn:
        conn.execute(
            insert(releases).values(
                version=version,
                wheel_name=wheel.name,
                sha256=digest,
                size=manifest.size,
                signed=signed.model_dump_json(),
                sites=" ".join(sites),
                percent=percent_value,
                state="offered",
                state_detail="",
                created_at=stamp,
                created_by=by,
                changed_at=stamp,
            )
        )
        return _release(conn.execute(select(releases).where(releases.c.version == version)).one())


def widen(
    engine: Engine,
    version: str,
    now: datetime,
    *,
    sites: tuple[str, ...] = (),
    percent: int | None = None,
) -> Release:
    """Offer a release to more kiosks (sites added, or a higher percentage), and again if it
    was halted."""
    with engine.begin() as conn:
        row = conn.execute(select(releases).where(releases.c.version == version)).first()
        if row is None:
            raise ReleaseError(f"no release {version} (central release list)")
        current = _release(row)
        if sites and percent is not None:
            raise ReleaseError("name sites or a percentage, not both")
        if not sites and percent is None and current.state == "offered":
            raise ReleaseError("say how to widen it: --site S or --percent N")
        new_sites, new_percent = current.sites, current.percent
        if sites:
            if not current.sites and current.percent:
                raise ReleaseError(
                    f"release {version} goes to {current.percent}% of kiosks: widen it with "
                    "--percent"
                )
            new_sites = tuple(dict.fromkeys(current.sites + sites))
        if percent is not None:
            if current.sites:
                raise ReleaseError(f"release {version} goes to named sites: widen it with --site")
            if not current.percent <= percent <= 100:
                raise ReleaseError(
                    f"--percent must be from {current.percent} (now) to 100, not {percent}"
                )
            new_percent = percent
        conn.execute(
            update(releases)
            .where(releases.c.version == version)
            .values(
                sites=" ".join(new_sites),
                percent=new_percent,
                state="offered",
                state_detail="",
                changed_at=to_utc_naive(now),
            )
        )
        return _release(conn.execute(select(releases).where(releases.c.version == version)).one())


def halt(conn: Connection, version: str, why: str, now: datetime) -> bool:
    done = conn.execute(
        update(releases)
        .where(releases.c.version == version, releases.c.state == "offered")
        .values(state="halted", state_detail=why[:300], changed_at=to_utc_naive(now))
    )
    return bool(done.rowcount)


def offer_for(conn: Connection, kiosk: KioskIdentity) -> SignedRelease | None:
    """The newest release that reaches this kiosk, signed; None when none does."""
    for release in all_releases(conn):
        if release.reaches(kiosk):
            return release.signed
    return None


def offered_versions(conn: Connection, kiosk_sites: dict[str, str]) -> dict[str, str]:
    """kiosk id -> the version it is offered now, for the fleet view."""
    found = all_releases(conn)
    offered: dict[str, str] = {}
    for kiosk_id, site_id in kiosk_sites.items():
        identity = KioskIdentity(kiosk_id=kiosk_id, site_id=site_id)
        for release in found:
            if release.reaches(identity):
                offered[kiosk_id] = release.version
                break
    return offered


def may_download(conn: Connection, kiosk: KioskIdentity, version: str) -> Release | None:
    """The release when this kiosk is (or was, before a widening or halt) meant to have it: a
    kiosk's token fetches only releases offered to it, so a stolen token learns no more."""
    row = conn.execute(select(releases).where(releases.c.version == version)).first()
    if row is None:
        return None
    release = _release(row)
    reached = (
        kiosk.site_id in release.sites
        if release.sites
        else (bucket(kiosk.kiosk_id) < release.percent)
    )
    return release if reached else None


def rollbacks_by_version(conn: Connection) -> dict[str, list[str]]:
    """version -> the kiosks whose last heartbeat says they switched back from it."""
    found: dict[str, list[str]] = {}
    for kiosk_id, report in conn.execute(select(kiosk_status.c.kiosk_id, kiosk_status.c.report)):
        try:
            said = json.loads(report or "{}").get("update") or {}
            rollbacks = said.get("rollbacks") or []
        except (ValueError, AttributeError):
            continue
        for item in rollbacks:
            version = item.get("from_version") if isinstance(item, dict) else None
            if isinstance(version, str) and kiosk_id not in found.get(version, []):
                found.setdefault(version, []).append(kiosk_id)
    return found


def rollout_step(conn: Connection, now: datetime, halt_after: int) -> int:
    """The rollout duty's step: halt each offered release that `halt_after` kiosks (or more)
    switched back from. Returns how many it halted."""
    if halt_after <= 0:
        return 0
    back = rollbacks_by_version(conn)
    halted = 0
    for release in all_releases(conn):
        kiosks_back = back.get(release.version, [])
        if release.state == "offered" and len(kiosks_back) >= halt_after:
            why = (
                f"halted: {len(kiosks_back)} kiosk(s) switched back from it "
                f"({', '.join(sorted(kiosks_back)[:5])})"
            )
            halted += halt(conn, release.version, why, now)
    return halted


def release_duty(now: Callable[[], datetime], halt_after: int) -> Duty:
    """The rollout duty: looks at the heartbeats every 30 s, one process at a time."""
    return Duty(
        name=DUTY_NAME, step=lambda conn: rollout_step(conn, now(), halt_after), idle_s=30.0
    )
