"""Kiosk enrolment and tokens.

Central staff add a kiosk for a site and get a one-time code (shown as text and as a QR the
kiosk's camera can read). The kiosk trades the code for its own bearer token once; the code then
stops working, and so does an expired one. The centre keeps only sha256 hashes of codes and
tokens, so a copy of the database lets nobody act as a kiosk. Revoking a kiosk drops its token:
its next call gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update

from central import roster
from central.db.schema import (
    cadres,
    enrolment_codes,
    events,
    kiosk_status,
    kiosks,
    pushed_settings,
    rejected_events,
    sites,
)
from central.keys import KeyFileError, public_keyring
from central.timefix import to_utc_naive
from sync.badge_token import public_key_to_text
from sync.peers import MAX_PEERS, PeerInfo, PeerKeyError, PeersAnswer, public_key_of
from sync.protocol import (
    KeysAnswer,
    PublicKey,
    RosterCadre,
    RosterDelta,
    SettingsAnswer,
    pushable,
)

KIOSK_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CODE_BYTES = 10  # 80 bits: 16 base32 characters, typed as four groups of four


class KioskError(Exception):
    """A kiosk operation that cannot be done; the message is for the person who asked."""


class EnrolmentRefused(KioskError):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").strip().upper()


def new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii").rstrip("=")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewCode:
    kiosk_id: str
    site_id: str
    code: str  # shown once; only its hash is stored
    expires_at: datetime  # naive UTC


@dataclass(frozen=True)
class KioskIdentity:
    """Who a valid token belongs to."""

    kiosk_id: str
    site_id: str


def _site_name(conn: Connection, site_id: str) -> str | None:
    return conn.execute(select(sites.c.name).where(sites.c.site_id == site_id)).scalar()


def _free_kiosk_id(conn: Connection, site_id: str) -> str:
    stem = site_id if KIOSK_ID_PATTERN.fullmatch(site_id) and len(site_id) <= 56 else "kiosk"
    taken = set(
        conn.execute(select(kiosks.c.kiosk_id).where(kiosks.c.kiosk_id.like(f"{stem}-%"))).scalars()
    )
    number = 1
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"


def _issue_code(
    conn: Connection, kiosk_id: str, now: datetime, ttl: timedelta
) -> tuple[str, datetime]:
    code = new_code()
    expires = now + ttl
    conn.execute(
        insert(enrolment_codes).values(
            code_hash=hash_secret(normalise_code(code)),
            kiosk_id=kiosk_id,
            created_at=now,
            expires_at=expires,
        )
    )
    return code, expires


def add_kiosk(
    engine: Engine,
    site_id: str,
    now: datetime,
    ttl: timedelta,
    name: str = "",
    kiosk_id: str | None = None,
    created_by: str = "",
) -> NewCode:
    """Create a kiosk of `site_id` (which must be on the roster) and its first one-time code."""
    now = to_utc_naive(now)
    with engine.begin() as conn:
        if _site_name(conn, site_id) is None:
            raise KioskError(f"no site {site_id!r} on the roster: import the roster first")
        if kiosk_id is None:
            kiosk_id = _free_kiosk_id(conn, site_id)
        elif not KIOSK_ID_PATTERN.fullmatch(kiosk_id):
            raise KioskError("kiosk id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        elif conn.execute(select(kiosks.c.kiosk_id).where(kiosks.c.kiosk_id == kiosk_id)).first():
            raise KioskError(f"kiosk {kiosk_id!r} exists already")
        conn.execute(
            insert(kiosks).values(
                kiosk_id=kiosk_id,
                site_id=site_id,
                name=name,
                created_at=now,
                created_by=created_by,
            )
        )
        code, expires = _issue_code(conn, kiosk_id, now, ttl)
    return NewCode(kiosk_id, site_id, code, expires)


def new_enrolment_code(engine: Engine, kiosk_id: str, now: datetime, ttl: timedelta) -> NewCode:
    """Another one-time code for an existing kiosk (a replaced SD card); its old token stays
    valid until the new code is used."""
    now = to_utc_naive(now)
    with engine.begin() as conn:
        row = conn.execute(select(kiosks).where(kiosks.c.kiosk_id == kiosk_id)).first()
        if row is None:
            raise KioskError(f"no kiosk {kiosk_id!r}")
        if row.revoked_at is not None:
            raise KioskError(f"kiosk {kiosk_id!r} is revoked; add a new kiosk instead")
        code, expires = _issue_code(conn, kiosk_id, now, ttl)
    return NewCode(kiosk_id, row.site_id, code, expires)


def enrol(engine: Engine, code: str, now: datetime) -> tuple[KioskIdentity, str, str]:
    """Trade a one-time code for a token: (kiosk, site name, token). Raises EnrolmentRefused."""
    now = to_utc_naive(now)
    code_hash = hash_secret(normalise_code(code))
    token = new_token()
    with engine.begin() as conn:
        row = conn.execute(
            select(enrolment_codes, kiosks.c.site_id, kiosks.c.revoked_at)
            .join(kiosks, kiosks.c.kiosk_id == enrolment_codes.c.kiosk_id)
            .where(enrolment_codes.c.code_hash == code_hash)
        ).first()
        if row is None:
            raise EnrolmentRefused(404, "not_found", "unknown enrolment code")
        if row.revoked_at is not None:
            raise EnrolmentRefused(410, "gone", "this kiosk has been revoked")
        if row.expires_at <= now:
            raise EnrolmentRefused(410, "gone", "enrolment code expired: ask for a new one")
        # The guard on used_at makes "once" hold even when two kiosks send the code at once.
        used = conn.execute(
            update(enrolment_codes)
            .where(enrolment_codes.c.code_hash == code_hash, enrolment_codes.c.used_at.is_(None))
            .values(used_at=now)
        )
        if used.rowcount != 1:
            raise EnrolmentRefused(410, "gone", "enrolment code already used")
        conn.execute(
            update(kiosks)
            .where(kiosks.c.kiosk_id == row.kiosk_id)
            .values(token_hash=hash_secret(token), enrolled_at=now, peer_key=None)
        )
        site_name = _site_name(conn, row.site_id) or ""
    return KioskIdentity(row.kiosk_id, row.site_id), site_name, token


# Built once: every kiosk request runs it.
_BY_TOKEN = select(kiosks.c.kiosk_id, kiosks.c.site_id).where(
    kiosks.c.token_hash == bindparam("token_hash"), kiosks.c.revoked_at.is_(None)
)


def authenticate(conn: Connection, token: str) -> KioskIdentity | None:
    if not token:
        return None
    row = conn.execute(_BY_TOKEN, {"token_hash": hash_secret(token)}).first()
    return KioskIdentity(row.kiosk_id, row.site_id) if row else None


class KnownTokens:
    """Kiosk tokens this process has found valid, by their hash: the push route takes the
    kiosk's identity from here, and ingest confirms the token under the kiosk row's lock
    (central/ingest/push.py `token_hash`), so a push costs no lookup of its own and a revoked
    kiosk's push is refused all the same. Pull and heartbeat look the token up each time."""

    def __init__(self, size: int = 20_000) -> None:
        self._known: dict[str, KioskIdentity] = {}
        self._size = size

    def get(self, token_hash: str) -> KioskIdentity | None:
        return self._known.get(token_hash)

    def remember(self, token_hash: str, kiosk: KioskIdentity) -> None:
        if len(self._known) >= self._size:
            self._known.clear()  # more tokens than kiosks: some were revoked or replaced
        self._known[token_hash] = kiosk

    def forget(self, token_hash: str) -> None:
        self._known.pop(token_hash, None)


def revoke(engine: Engine, kiosk_id: str, now: datetime, by: str = "") -> None:
    """Shut a kiosk out at once: its token and any unused codes stop working."""
    now = to_utc_naive(now)
    with engine.begin() as conn:
        found = conn.execute(
            update(kiosks)
            .where(kiosks.c.kiosk_id == kiosk_id)
            .values(
                revoked_at=func.coalesce(kiosks.c.revoked_at, now),
                revoked_by=by,
                token_hash=None,
                peer_key=None,
            )
        )
        if found.rowcount != 1:
            raise KioskError(f"no kiosk {kiosk_id!r}")
        conn.execute(
            update(enrolment_codes)
            .where(enrolment_codes.c.kiosk_id == kiosk_id, enrolment_codes.c.used_at.is_(None))
            .values(used_at=now)
        )


def peers_answer(
    conn: Connection, kiosk: KioskIdentity, peer_key: str, address: str | None
) -> PeersAnswer:
    """Keep the asking kiosk's peer key (its token vouches for it) and name the site's other
    live kiosks: enrolled, not revoked, with a key. A revoked kiosk has no token and no key, so
    it drops out of every list at once, and its peers refuse it from their next pull."""
    try:
        public_key_of(peer_key)
    except PeerKeyError:
        peer_key = ""  # not a key: the kiosk is listed to nobody until it sends one
    values: dict[str, Any] = {"peer_key": peer_key or None}
    if address is not None:
        values["peer_address"] = address or None
    conn.execute(update(kiosks).where(kiosks.c.kiosk_id == kiosk.kiosk_id).values(**values))
    rows = conn.execute(
        select(kiosks.c.kiosk_id, kiosks.c.peer_key, kiosks.c.peer_address)
        .where(
            kiosks.c.site_id == kiosk.site_id,
            kiosks.c.kiosk_id != kiosk.kiosk_id,
            kiosks.c.revoked_at.is_(None),
            kiosks.c.token_hash.is_not(None),
            kiosks.c.peer_key.is_not(None),
        )
        .order_by(kiosks.c.kiosk_id)
        .limit(MAX_PEERS)
    ).all()
    return PeersAnswer(
        site_id=kiosk.site_id,
        peers=[
            PeerInfo(kiosk_id=r.kiosk_id, public_key=r.peer_key, address=r.peer_address or "")
            for r in rows
        ],
    )


def answered_through(conn: Connection, kiosk_id: str, acknowledged: int) -> int:
    """How far the centre holds an answer for every record of the kiosk, up to `acknowledged`:
    the verified chain head, walked on over records stored after a gap and over records it
    rejected (the kiosk has its answer for those; sending them again changes nothing)."""
    head = int(
        conn.execute(select(kiosks.c.chain_seq).where(kiosks.c.kiosk_id == kiosk_id)).scalar() or 0
    )
    if head >= acknowledged:
        return head
    known = {
        int(seq)
        for table in (events, rejected_events)
        for seq in conn.execute(
            select(table.c.seq).where(
                table.c.kiosk_id == kiosk_id, table.c.seq > head, table.c.seq <= acknowledged
            )
        ).scalars()
        if seq is not None
    }
    while head + 1 in known:
        head += 1
    return head


def list_kiosks(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            kiosks.c.kiosk_id,
            kiosks.c.site_id,
            kiosks.c.name,
            kiosks.c.created_at,
            kiosks.c.enrolled_at,
            kiosks.c.revoked_at,
            kiosks.c.revoked_by,
            kiosks.c.last_push_at,
        ).order_by(kiosks.c.site_id, kiosks.c.kiosk_id)
    )
    return [dict(r._mapping) for r in rows]


# --- what a kiosk pulls ----------------------------------------------------------------------


# A delta bigger than this (a whole roster re-imported) is sent as a full roster of the site
# instead: it is smaller than listing every other site's changed cadre as "removed".
def kiosk_health(conn: Connection, now: datetime, dead_after_s: int) -> list[dict[str, Any]]:
    """Every kiosk with its latest heartbeat; `dead`: enrolled, not revoked, silent too long."""
    now = now.replace(tzinfo=None) if now.tzinfo else now
    rows = conn.execute(
        select(
            kiosks.c.kiosk_id,
            kiosks.c.site_id,
            kiosks.c.name,
            kiosks.c.enrolled_at,
            kiosks.c.revoked_at,
            kiosks.c.last_push_at,
            kiosks.c.chain_seq,
            kiosks.c.max_seq,
            kiosk_status.c.received_at.label("last_heartbeat_at"),
            kiosk_status.c.app_version,
            kiosk_status.c.queue_length,
            kiosk_status.c.last_scan_at,
            kiosk_status.c.camera_ok,
            kiosk_status.c.camera_detail,
            kiosk_status.c.clock_trusted,
            kiosk_status.c.clock_offset_s,
            kiosk_status.c.disk_free_bytes,
            kiosk_status.c.ready,
            kiosk_status.c.ready_detail,
            kiosk_status.c.report,
        )
        .select_from(kiosks.outerjoin(kiosk_status, kiosk_status.c.kiosk_id == kiosks.c.kiosk_id))
        .order_by(kiosks.c.site_id, kiosks.c.kiosk_id)
    )
    result = []
    for row in rows:
        data = dict(row._mapping)
        last = data["last_heartbeat_at"]
        active = data["enrolled_at"] is not None and data["revoked_at"] is None
        data["dead"] = active and (last is None or (now - last).total_seconds() > dead_after_s)
        data["silent_s"] = None if last is None else int((now - last).total_seconds())
        result.append(data)
    return result


FULL_ROSTER_AFTER = 500


def _roster_cadre(row: Any) -> RosterCadre:
    return RosterCadre(
        cadre_id=row.cadre_id,
        name=row.name,
        unit=row.unit or "",
        badge_serial=row.badge_serial,
        revoked_through=row.revoked_through,
    )


def roster_delta(
    conn: Connection, site_id: str, since: int, always: bool = False
) -> RosterDelta | None:
    """What changed in the site's roster and in revocations since `since` (0: the whole
    roster); None when nothing did, unless `always`."""
    version = roster.current_version(conn)
    if since == version and not always:
        return None
    columns = (
        cadres.c.cadre_id,
        cadres.c.name,
        cadres.c.unit,
        cadres.c.site_id,
        cadres.c.badge_serial,
        cadres.c.revoked_through,
    )
    changed_count = 0
    if since:
        changed_count = conn.execute(
            select(func.count()).select_from(cadres).where(cadres.c.change_version > since)
        ).scalar_one()
    site_name = conn.execute(select(sites.c.name).where(sites.c.site_id == site_id)).scalar()
    # A kiosk ahead of the centre (a store restored from backup) starts again from scratch.
    if not since or since > version or changed_count > FULL_ROSTER_AFTER:
        here = conn.execute(
            select(*columns).where(cadres.c.site_id == site_id).order_by(cadres.c.cadre_id)
        )
        revoked = conn.execute(
            select(cadres.c.cadre_id, cadres.c.revoked_through).where(
                cadres.c.revoked_through.is_not(None)
            )
        )
        return RosterDelta(
            version=version,
            full=True,
            site_id=site_id,
            site_name=site_name,
            cadres=[_roster_cadre(r) for r in here],
            revocations={r.cadre_id: r.revoked_through for r in revoked},
        )
    changed = conn.execute(select(*columns).where(cadres.c.change_version > since)).all()
    return RosterDelta(
        version=version,
        full=False,
        site_id=site_id,
        site_name=site_name,
        cadres=[_roster_cadre(r) for r in changed if r.site_id == site_id],
        removed=sorted(r.cadre_id for r in changed if r.site_id != site_id),
        revocations={r.cadre_id: r.revoked_through for r in changed if r.revoked_through},
    )


def keys_answer(key_path: Path) -> KeysAnswer:
    """Every public key a badge may be signed with (current and retired)."""
    try:
        ring = public_keyring(key_path)
    except KeyFileError:
        ring = {}
    keys = [
        PublicKey(key_id=key_id, public_key=public_key_to_text(key))
        for key_id, key in sorted(ring.items())
    ]
    digest = hashlib.sha256(
        "|".join(f"{k.key_id}:{k.public_key}" for k in keys).encode("ascii")
    ).hexdigest()
    return KeysAnswer(version=digest[:16], keys=keys)


def _scopes(kiosk: KioskIdentity) -> list[str]:
    return ["*", f"site:{kiosk.site_id}", f"kiosk:{kiosk.kiosk_id}"]


def settings_answer(
    conn: Connection, kiosk: KioskIdentity, since: int, always: bool = False
) -> SettingsAnswer | None:
    """The kiosk's pushed settings (narrowest scope wins); None when unchanged since `since`,
    unless `always`."""
    rows = conn.execute(
        select(pushed_settings).where(pushed_settings.c.scope.in_(_scopes(kiosk)))
    ).all()
    version = max((r.version for r in rows), default=0)
    if version == since and not always:
        return None
    rank = {scope: i for i, scope in enumerate(_scopes(kiosk))}
    values: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: rank[r.scope]):
        value = json.loads(row.value)
        # null: no value at this scope (removed). An unpushable one (stored by an older centre)
        # is never sent.
        if value is not None and pushable(row.key):
            values[row.key] = value
    return SettingsAnswer(version=version, values=values)


def set_pushed_setting(
    engine: Engine, scope: str, key: str, value: Any, now: datetime, by: str = ""
) -> int:
    """Set a kiosk setting the centre hands out (scope "*", "site:<id>" or "kiosk:<id>").

    value None removes it. The kiosk checks every value against its own settings model before
    applying it, so a wrong one is refused there and reported, not applied.
    """
    if not (scope == "*" or scope.startswith(("site:", "kiosk:"))):
        raise KioskError("scope must be *, site:<id> or kiosk:<id>")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
        raise KioskError(f"{key!r} is not a setting name")
    if not pushable(key):
        raise KioskError(
            f"{key} cannot be set from the centre: it changes what a kiosk trusts, where it "
            "listens or reads frames, or who may log in; set it on the kiosk itself"
        )
    now = to_utc_naive(now)
    with engine.begin() as conn:
        version = (conn.execute(select(func.max(pushed_settings.c.version))).scalar() or 0) + 1
        conn.execute(
            delete(pushed_settings).where(
                pushed_settings.c.scope == scope, pushed_settings.c.key == key
            )
        )
        # Removal is a row holding null, so the version kiosks see still rises.
        conn.execute(
            insert(pushed_settings).values(
                scope=scope,
                key=key,
                value=json.dumps(value),
                version=version,
                changed_at=now,
                changed_by=by,
            )
        )
    return version
