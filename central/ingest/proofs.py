"""What makes a kiosk's record count: a badge that proves it, and a correction in its own lane.

A kiosk's token on the SD card is enough to push any record, so the centre takes no record's word
for attendance:

- a camera or wedge record counts only when it carries the badge token it was read from
  (`badge_token`), signed by one of the centre's issuing keys, for the record's own cadre and
  serial, and not revoked at the time of the scan (a badge revoked after the scan still counts;
  one revoked before does not);
- a kiosk's void or correction counts only when it names a record of that kiosk's own log, of
  the same cadre (staff corrections at the centre are the only path across kiosks);
- manual entries count as the lead's word, attributed to the lead and counted apart ("by hand").

A record that fails is stored all the same (it is part of its kiosk's hash chain), with the
reason in `events.quarantine`, and listed as an anomaly; pairing (central/stays/) never sees it.

A badge's signature is checked once, not at every scan: the centre keeps the tokens it knows to
be genuine (`badge_proofs`: those it printed, and those it verified with Ed25519 the first time a
kiosk sent them), and each process remembers the latest checks. Ed25519 verification costs about
0.2 ms of CPU here, more than storing a record, so this is what keeps ingest fast. Keys are
loaded once per change of the key files, revocations once per batch for the cadres in it; all of
it before the write transaction but the revocations.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    Connection,
    DateTime,
    bindparam,
    exists,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import BindParameter

from central.db.bulk import chunks, dialect_insert
from central.db.schema import badge_proofs, badge_revocations, cadres, events
from sync.badge_token import BadgeCheck, verify_token
from sync.events import Event

PROOF_SOURCES = frozenset({"camera", "wedge"})
RECHECK_S = 1.0  # how often the issuing key files are looked at for a rotation

# events.quarantine: why a stored record does not count.
NO_PROOF = "no_badge_proof"
BAD_PROOF = "bad_badge_proof"
WRONG_BADGE = "badge_mismatch"
REVOKED = "badge_revoked"
FOREIGN_CORRECTION = "foreign_correction"
TIME_CLAIM = "time_claim"

# Anomaly kinds (one row per record that fails).
PROOF_ANOMALY = "badge_proof"
LANE_ANOMALY = "correction_lane"


def needs_proof(event: Event) -> bool:
    return event.source in PROOF_SOURCES and event.kind != "void"


class Keyring:
    """The issuing public keys, read again only when a key file changes.

    `load` is central.keys.public_keyring; the key files' names and modification times are the
    version, so a rotation (a new key, a retired one beside it) is picked up by the next push.
    """

    def __init__(self, key_path: Path, load: Any) -> None:
        self._path = key_path
        self._load = load
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int], ...] | None = None
        self._looked_at = 0.0
        self._keys: dict[int, Ed25519PublicKey] = {}
        self._version = 0

    def _files_stamp(self) -> tuple[tuple[str, int], ...]:
        files = [
            self._path,
            *sorted(self._path.parent.glob(f"{self._path.stem}.retired-*.pub.pem")),
        ]
        stamp = []
        for file in files:
            try:
                stamp.append((file.name, file.stat().st_mtime_ns))
            except OSError:
                stamp.append((file.name, -1))
        return tuple(stamp)

    def current(self) -> tuple[int, Mapping[int, Ed25519PublicKey]]:
        """(version, key id -> public key); no keys when the key file cannot be read.

        The key files are looked at once a second at most: a glob and a stat on every push
        each give up the interpreter lock, and under load each costs a wait to get it back."""
        now = time.monotonic()
        with self._lock:
            if self._stamp is not None and now - self._looked_at < RECHECK_S:
                return self._version, self._keys
        stamp = self._files_stamp()
        with self._lock:
            self._looked_at = now
            if stamp != self._stamp:
                try:
                    self._keys = dict(self._load(self._path))
                except Exception:  # no key yet, or unreadable: no badge verifies, none counts
                    self._keys = {}
                self._stamp = stamp
                self._version += 1
            return self._version, self._keys


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def remember_badges(conn: Connection, proven: Iterable[tuple[str, BadgeCheck]]) -> None:
    """Keep badges known to be genuine (token, its valid check), so their signatures are not
    checked again; the centre calls it for the badges it prints, ingest for those it verified."""
    rows = {
        token_digest(token): {
            "token_sha256": token_digest(token),
            "cadre_id": check.cadre_id,
            "serial": check.serial,
            "key_id": check.key_id,
            "issued": check.issued,
        }
        for token, check in proven
        if check.valid
    }
    for chunk in chunks(sorted(rows)):
        conn.execute(
            dialect_insert(conn, badge_proofs).on_conflict_do_nothing(),
            [rows[digest] for digest in chunk],
        )


# Opens a connection that only reads (central.db.engine.reading), for when one is needed at all.
Reader = Callable[[], AbstractContextManager[Connection]]


class SignatureCache:
    """What is known of badge tokens, nearest first: this process's memory (per key version,
    by the token's sha256, bounded, oldest dropped), then the `badge_proofs` table, then an
    Ed25519 verification.

    The memory is filled from `badge_proofs` wholesale at a process's first push (per key
    version): at dawn nearly every badge arrives for its first time of the day, so without it
    each scan would cost a lookup in the database (about a fifth of ingest's CPU, measured with
    bench/sync.py). A badge printed or verified by another process after that is looked up in
    the table when it first comes here.
    """

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._checks: OrderedDict[tuple[int, str], BadgeCheck] = OrderedDict()
        self._warm_version: int | None = None

    def _warm(self, conn: Connection, version: int, keys: Mapping[int, Ed25519PublicKey]) -> None:
        with self._lock:
            if self._warm_version == version:
                return
            self._warm_version = version
        loaded: list[tuple[str, BadgeCheck]] = []
        for row in conn.execute(select(badge_proofs).limit(self._size)):
            if row.key_id in keys:
                loaded.append(
                    (
                        row.token_sha256,
                        BadgeCheck(True, "ok", row.cadre_id, row.serial, row.key_id, row.issued),
                    )
                )
        with self._lock:
            for digest, check in loaded:
                self._checks.setdefault((version, digest), check)
            self._trim()

    def _trim(self) -> None:
        while len(self._checks) > self._size:
            self._checks.popitem(last=False)

    def check(
        self,
        connect: Reader | None,
        version: int,
        keys: Mapping[int, Ed25519PublicKey],
        tokens: Iterable[str],
    ) -> tuple[dict[str, BadgeCheck], list[tuple[str, BadgeCheck]]]:
        """(token -> check, the tokens newly verified here, to remember). `connect` opens a
        reading connection, only when the memory does not know a token (or is cold): at dawn
        nearly every push finds its badges here and takes no connection for them."""
        if connect is not None and self._warm_version != version:
            with connect() as conn:
                self._warm(conn, version, keys)
        found: dict[str, BadgeCheck] = {}
        missing: dict[str, str] = {}  # digest -> token
        with self._lock:
            for token in tokens:
                if token in found:
                    continue
                digest = token_digest(token)
                cached = self._checks.get((version, digest))
                if cached is None:
                    missing[digest] = token
                else:
                    found[token] = cached
        if not missing:
            return found, []
        known: dict[str, BadgeCheck] = {}
        if connect is not None:
            with connect() as conn:
                for chunk in chunks(sorted(missing)):
                    for row in conn.execute(
                        select(badge_proofs).where(badge_proofs.c.token_sha256.in_(chunk))
                    ):
                        if row.key_id in keys:  # a key taken out of the ring proves nothing now
                            known[missing[row.token_sha256]] = BadgeCheck(
                                True, "ok", row.cadre_id, row.serial, row.key_id, row.issued
                            )
        verified = [(t, verify_token(t, keys)) for t in missing.values() if t not in known]
        fresh = known | dict(verified)
        with self._lock:
            for token, check in fresh.items():
                self._checks[(version, token_digest(token))] = check
            self._trim()
        found.update(fresh)
        return found, [(t, c) for t, c in verified if c.valid]


@dataclass
class BadgeProofs:
    """What ingest needs to judge badge proofs: the keys and what is known of tokens."""

    keyring: Keyring | None
    cache: SignatureCache
    fixed_keys: Mapping[int, Ed25519PublicKey] | None = None

    @classmethod
    def of_keys(cls, keys: Mapping[int, Ed25519PublicKey]) -> BadgeProofs:
        """A fixed key set (tests and benches that hold their key in memory)."""
        return cls(None, SignatureCache(), dict(keys))

    @classmethod
    def of_key_file(cls, key_path: Path, load: Any) -> BadgeProofs:
        return cls(Keyring(key_path, load), SignatureCache())

    def signatures(
        self, connect: Reader | None, tokens: Iterable[str]
    ) -> tuple[dict[str, BadgeCheck], list[tuple[str, BadgeCheck]]]:
        if self.keyring is not None:
            version, keys = self.keyring.current()
        else:
            version, keys = 0, self.fixed_keys or {}
        return self.cache.check(connect, version, keys, tokens)


@dataclass(frozen=True)
class Verdict:
    """Why one record does not count (None when it does) and what to tell staff."""

    quarantine: str
    anomaly: str
    detail: str


def signature_verdicts(
    connect: Reader | None, accepted: Iterable[Event], proofs: BadgeProofs
) -> tuple[dict[str, Verdict | BadgeCheck], list[tuple[str, BadgeCheck]]]:
    """(event_id -> the badge it proves (a valid BadgeCheck) or why it proves nothing, the
    tokens verified for the first time, for `remember_badges`).

    Everything here depends only on the record and the keys: done before the write
    transaction (`connect` opens a connection that only reads, when one is needed). Revocation,
    which depends on the scan's time, is `revocation_verdict`.
    """
    needing = [e for e in accepted if needs_proof(e)]
    checks, fresh = proofs.signatures(connect, (e.badge_token for e in needing if e.badge_token))
    found: dict[str, Verdict | BadgeCheck] = {}
    for event in needing:
        key = str(event.event_id)
        if not event.badge_token:
            found[key] = Verdict(
                NO_PROOF,
                PROOF_ANOMALY,
                "scan record without the badge it was read from: not counted",
            )
            continue
        check = checks[event.badge_token]
        if check.reason != "ok":
            found[key] = Verdict(
                BAD_PROOF, PROOF_ANOMALY, f"badge proof refused ({check.message}): not counted"
            )
        elif (check.cadre_id, check.serial) != (event.cadre_id, event.badge_serial):
            found[key] = Verdict(
                WRONG_BADGE,
                PROOF_ANOMALY,
                f"record for {event.cadre_id} serial {event.badge_serial} carries the badge of "
                f"{check.cadre_id} serial {check.serial}: not counted",
            )
        else:
            found[key] = check
    return found, fresh


# Both kinds of revocation of some cadres, in one statement built once: it runs in every push's
# write transaction.
_REVOCATIONS = union_all(
    select(
        literal(0).label("untimed"),
        badge_revocations.c.cadre_id,
        badge_revocations.c.through_serial,
        badge_revocations.c.revoked_at,
    ).where(badge_revocations.c.cadre_id.in_(bindparam("cadre_ids", expanding=True))),
    select(
        literal(1).label("untimed"),
        cadres.c.cadre_id,
        cadres.c.revoked_through.label("through_serial"),
        null().cast(DateTime).label("revoked_at"),
    ).where(
        cadres.c.cadre_id.in_(bindparam("cadre_ids", expanding=True)),
        cadres.c.revoked_through.is_not(None),
    ),
)


# Whether any of some cadres (at most CHUNK) has a revocation of either kind: asked in ingest's
# opening statement, so the common push (nobody revoked) loads no Revocations of its own.
_REVOKED_CADRE_IDS: BindParameter[list[str]] = bindparam("revoked_cadre_ids", expanding=True)
ANY_REVOKED = or_(
    exists().where(badge_revocations.c.cadre_id.in_(_REVOKED_CADRE_IDS)),
    exists().where(
        cadres.c.cadre_id.in_(_REVOKED_CADRE_IDS), cadres.c.revoked_through.is_not(None)
    ),
)


class Revocations:
    """Revocations of some cadres with their times, loaded once for a batch.

    A revocation in `cadres.revoked_through` with no row in `badge_revocations` (made before
    revocations had times) holds from the beginning of time.
    """

    def __init__(self, history: dict[str, list[tuple[int, datetime | None]]]) -> None:
        self._history = history

    @classmethod
    def none(cls) -> Revocations:
        return cls({})

    @classmethod
    def load(cls, conn: Connection, cadre_ids: Iterable[str]) -> Revocations:
        history: dict[str, list[tuple[int, datetime | None]]] = defaultdict(list)
        wanted = sorted(set(cadre_ids))
        for chunk in chunks(wanted):
            untimed: list[tuple[str, int]] = []
            for row in conn.execute(_REVOCATIONS, {"cadre_ids": list(chunk)}):
                if row.untimed:
                    untimed.append((row.cadre_id, row.through_serial))
                else:
                    history[row.cadre_id].append((row.through_serial, row.revoked_at))
            for cadre_id, through in untimed:
                latest_timed = max((s for s, _ in history.get(cadre_id, [])), default=-1)
                if through > latest_timed:
                    history[cadre_id].append((through, None))
        return cls(dict(history))

    def revoked(
        self, cadre_id: str, serial: int | None, at: datetime
    ) -> tuple[bool, datetime | None]:
        """(revoked at `at`, since when: None when the revocation's time is not known)."""
        if serial is None:
            return False, None
        hits = [
            when
            for through, when in self._history.get(cadre_id, [])
            if serial <= through and (when is None or when <= at)
        ]
        if not hits:
            return False, None
        timed = [w for w in hits if w is not None]
        return True, (min(timed) if len(timed) == len(hits) else None)


def revocation_verdict(
    revocations: Revocations, row: Mapping[str, Any], received_at: datetime
) -> Verdict | None:
    """Whether the badge of a proven record (an events row) was revoked when it was read.

    The scan's time is the record's corrected time; when the centre could not correct it, the
    scan happened at the latest when it arrived, and it is judged then (judged again when the
    boot's clock is known: central/ingest/clocks.py).
    """
    uncorrected = row["time_status"] == "uncorrected"
    at = received_at if uncorrected else row["corrected_time"]
    revoked, since = revocations.revoked(row["cadre_id"], row["badge_serial"], at)
    if not revoked:
        return None
    read = "at an unknown time" if uncorrected else f"at {at:%Y-%m-%d %H:%M:%S} UTC"
    when = f"at {since:%Y-%m-%d %H:%M:%S} UTC" if since is not None else "at an unknown time"
    return Verdict(
        REVOKED,
        PROOF_ANOMALY,
        f"badge serial {row['badge_serial']} of {row['cadre_id']} read {read}, revoked {when}: "
        "not counted",
    )


def lane_verdicts(
    conn: Connection, kiosk_id: str, rows: list[dict[str, Any]]
) -> dict[str, Verdict]:
    """event_id -> why a kiosk's void or correction may not stand, for rows that name another.

    It must name a record of the same kiosk's log and cadre (stored before, or in this batch).
    """
    correcting = [r for r in rows if r["corrects"]]
    if not correcting:
        return {}
    in_batch = {r["event_id"]: (r["kiosk_id"], r["cadre_id"]) for r in rows}
    targets: dict[str, tuple[str, str]] = {}
    wanted = sorted({r["corrects"] for r in correcting} - set(in_batch))
    for chunk in chunks(wanted):
        for found in conn.execute(
            select(events.c.event_id, events.c.kiosk_id, events.c.cadre_id).where(
                events.c.event_id.in_(chunk)
            )
        ):
            targets[found.event_id] = (found.kiosk_id, found.cadre_id)
    verdicts: dict[str, Verdict] = {}
    for row in correcting:
        what = "void" if row["kind"] == "void" else "correction"
        target = in_batch.get(row["corrects"]) or targets.get(row["corrects"])
        if target is None:
            detail = f"{what} of {row['corrects']}, which is no record of this kiosk: refused"
        elif target[0] != kiosk_id:
            detail = f"{what} of {row['corrects']}, a record of kiosk {target[0]}: refused"
        elif target[1] != row["cadre_id"]:
            detail = (
                f"{what} for {row['cadre_id']} of {row['corrects']}, a record of {target[1]}: "
                "refused"
            )
        else:
            continue
        verdicts[row["event_id"]] = Verdict(FOREIGN_CORRECTION, LANE_ANOMALY, detail)
    return verdicts
