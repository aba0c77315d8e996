"""The site lead's login, kept on the kiosk's disk: the PIN's hash, the live sessions, and the
count of wrong PINs per client address.

`lead_auth.json` (0600): the PIN as a scrypt hash (never in clear: `kiosk set-pin`), and the
sha256 of each live session's id. A phone's cookie holds the id itself, so a session exists only
while it is listed here: logging out removes it (the old cookie is worth nothing), a new PIN ends
every session, and a copy of the SD card, which holds the cookie-signing key and this file, still
cannot make a session (it holds hashes, not ids). `kiosk set-pin` may run beside the running
kiosk: each read-modify-write holds a lock, and the kiosk reads the file again when it changes.

`lead_guard.json` (0600): wrong PINs per client address (an IPv6 address counts as its /64).
After `lead_max_failures` wrong PINs an address is locked for `lead_lockout_s`, and each further
lockout of that address before a good login doubles (up to a day). Kept on disk, so a restart
(the watchdog's, or one an attacker provokes) gives no fresh guesses; per address, so a flood
from one phone never locks out the lead on another. A check in flight counts against the
address before it runs, so a burst of parallel guesses gets no more tries than a sequence.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from werkzeug.security import check_password_hash, generate_password_hash

from kiosk.private_files import PRIVATE_FILE, atomic_write, locked

log = logging.getLogger(__name__)

AUTH_FILE = "lead_auth.json"
AUTH_LOCK = ".lead_auth.lock"
GUARD_FILE = "lead_guard.json"
# 16 MB and ~0.1 s here, a few tenths of a second on a Pi: one login's worth, and it makes a PIN
# read off a stolen card cost as much to guess.
PIN_METHOD = "scrypt:16384:8:1"
PIN_PATTERN = re.compile(r"\d{4,12}")
PIN_HASH_PATTERN = re.compile(r"scrypt:\d+:\d+:\d+\$[^$]{1,64}\$[0-9a-f]{16,256}")
MAX_SESSIONS = 32
MAX_LOCKOUT_S = 24 * 3600.0
MAX_ADDRESSES = 1024
# PIN checks at once: each is a deliberate ~16 MB, CPU-heavy hash; the scan path comes first.
PARALLEL_CHECKS = 2
CHECK_WAIT_S = 5.0


class PinError(ValueError):
    pass


class PinBusy(Exception):
    """Too many PIN checks at once: try again in a moment."""


def check_pin(pin: str) -> str:
    if not PIN_PATTERN.fullmatch(pin):
        raise PinError("the PIN must be 4 to 12 digits")
    return pin


def hash_pin(pin: str, method: str = PIN_METHOD) -> str:
    return generate_password_hash(check_pin(pin), method=method)


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class AuthState:
    pin_hash: str = ""
    pin_set_at: float = 0.0
    # sha256 of a session id -> {"created": epoch seconds, "name": the lead's name}
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: bytes) -> AuthState:
        data = json.loads(raw)
        pin_hash = str(data.get("pin_hash") or "")
        if pin_hash and not PIN_HASH_PATTERN.fullmatch(pin_hash):
            raise ValueError("pin_hash is not a scrypt hash")
        sessions = data.get("sessions") or {}
        if not isinstance(sessions, dict):
            raise ValueError("sessions is not an object")
        return cls(pin_hash, float(data.get("pin_set_at") or 0.0), sessions)

    def to_json(self) -> bytes:
        return json.dumps(
            {"pin_hash": self.pin_hash, "pin_set_at": self.pin_set_at, "sessions": self.sessions},
            indent=1,
        ).encode("utf-8")


class LeadAuth:
    """The PIN and the sessions, read again whenever another process changed the file."""

    def __init__(
        self, instance: Path, session_hours: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = instance / AUTH_FILE
        self._lock_path = instance / AUTH_LOCK
        self.session_s = session_hours * 3600
        self._clock = clock
        self._mutex = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._state = AuthState()
        self._checks = threading.BoundedSemaphore(PARALLEL_CHECKS)
        # Sessions that could not be written (a full disk): the lead must still get in, to see
        # that the disk is full. They last until the kiosk restarts.
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._ended: set[str] = set()  # logged out while the file could not be written
        self.problem = ""  # why the file could not be read (the login then stays shut)

    # ------------------------------------------------------------------ reading

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_ino, info.st_size)

    def state(self) -> AuthState:
        stamp = self._file_stamp()
        with self._mutex:
            if stamp != self._stamp:
                self._state = self._read()
                self._stamp = stamp
            return self._state

    def _read(self) -> AuthState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.problem = ""
            return AuthState()
        try:
            state = AuthState.from_json(raw)
        except (ValueError, TypeError) as exc:
            # Shut, not open: a damaged file must not leave the lead page without a PIN.
            self.problem = f"{self.path.name} is damaged ({exc}): set the PIN again"
            log.error("lead login: %s", self.problem)
            return AuthState(pin_hash="!damaged")
        self.problem = ""
        return state

    def _change(self, change: Callable[[AuthState], None]) -> None:
        with locked(self._lock_path):
            state = self._read()
            change(state)
            atomic_write(self.path, state.to_json(), PRIVATE_FILE)
        with self._mutex:
            self._stamp = None  # read again next time (our own write included)

    # ------------------------------------------------------------------ the PIN

    @property
    def pin_set(self) -> bool:
        return bool(self.state().pin_hash)

    def set_pin(self, pin: str, method: str = PIN_METHOD) -> None:
        """A new PIN; every session ends."""
        new_hash = hash_pin(pin, method)

        def change(state: AuthState) -> None:
            state.pin_hash = new_hash
            state.pin_set_at = self._clock()
            state.sessions = {}

        self._change(change)
        with self._mutex:
            self._unsaved.clear()

    def verify_pin(self, pin: str) -> bool:
        """Raises PinBusy when PARALLEL_CHECKS checks already run for CHECK_WAIT_S."""
        pin_hash = self.state().pin_hash
        if not pin_hash or not PIN_HASH_PATTERN.fullmatch(pin_hash):
            return False
        if not self._checks.acquire(timeout=CHECK_WAIT_S):
            raise PinBusy()
        try:
            if not PIN_PATTERN.fullmatch(pin):
                # Still costs a hash: the answer's time tells nothing about what was typed.
                check_password_hash(pin_hash, "0000")
                return False
            return check_password_hash(pin_hash, pin)
        finally:
            self._checks.release()

    # ------------------------------------------------------------------ sessions

    def open_session(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = self._clock()

        def change(state: AuthState) -> None:
            live = {k: v for k, v in state.sessions.items() if self._alive(v, now)}
            live[_sid_hash(sid)] = {"created": now, "name": name}
            # Bounded: the oldest go first.
            ordered = sorted(live.items(), key=lambda item: float(item[1].get("created", 0)))
            state.sessions = dict(ordered[-MAX_SESSIONS:])

        try:
            self._change(change)
        except OSError as exc:
            log.error("lead session kept in memory only: %s", exc)
            with self._mutex:
                self._unsaved[_sid_hash(sid)] = {"created": now, "name": name}
                while len(self._unsaved) > MAX_SESSIONS:
                    self._unsaved.pop(next(iter(self._unsaved)))
        return sid

    def _alive(self, record: Any, now: float) -> bool:
        if not isinstance(record, dict):
            return False
        created = record.get("created")
        # abs(): a Pi has no clock of its own; after a power cut its clock may come back hours
        # behind, which must not end (or, set forward, prolong) a session past its length.
        return isinstance(created, int | float) and abs(now - created) < self.session_s

    def session_alive(self, sid: object) -> bool:
        if not isinstance(sid, str) or not sid:
            return False
        digest = _sid_hash(sid)
        record = self.state().sessions.get(digest)
        with self._mutex:
            if digest in self._ended:
                return False
            record = record or self._unsaved.get(digest)
        return self._alive(record, self._clock())

    def end_session(self, sid: object) -> None:
        if not isinstance(sid, str) or not sid:
            return
        digest = _sid_hash(sid)
        with self._mutex:
            self._unsaved.pop(digest, None)
        if digest not in self.state().sessions:
            return

        def change(state: AuthState) -> None:
            state.sessions.pop(digest, None)

        try:
            self._change(change)
        except OSError as exc:
            log.error("lead session ended in memory only: %s", exc)
            with self._mutex:
                self._ended.add(digest)

    def end_all_sessions(self) -> None:
        def change(state: AuthState) -> None:
            state.sessions = {}

        self._change(change)
        with self._mutex:
            self._unsaved.clear()


# ---------------------------------------------------------------------- guessing


def client_key(address: str | None) -> str:
    """Whom wrong PINs are counted against: the IPv4 address, or the IPv6 /64 (one device on a
    LAN may take any address of its /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Attempt:
    status: Literal["go", "locked"]
    locked_for_s: float = 0.0


@dataclass(frozen=True)
class GuardResult:
    status: Literal["ok", "wrong", "locked"]
    attempts_left: int = 0
    locked_for_s: float = 0.0


class PinGuard:
    """Wrong PINs per client address, on disk. Thread-safe; the clock is injectable."""

    def __init__(
        self,
        path: Path,
        max_failures: int,
        lockout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        # address -> {"failures": n, "lockouts": n, "locked_until": epoch s, "locked_for": s,
        # "last": epoch s}
        self._entries: dict[str, dict[str, float]] = self._load()

    def _load(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError:
            log.error("%s is damaged: wrong-PIN counts start again", self.path)
            return {}
        entries: dict[str, dict[str, float]] = {}
        now = self._clock()
        for key, entry in data.items() if isinstance(data, dict) else []:
            try:
                clean = {k: float(entry[k]) for k in ("failures", "lockouts", "locked_until")}
                clean["locked_for"] = float(entry.get("locked_for", MAX_LOCKOUT_S))
                clean["last"] = float(entry.get("last", now))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            entries[str(key)[:64]] = clean
        return entries

    def _save(self) -> None:
        now = self._clock()
        # Forget addresses that are not locked and were quiet for a day; keep the list bounded.
        keep = {
            key: entry
            for key, entry in self._entries.items()
            if self._remaining(entry, now) > 0 or abs(now - entry["last"]) < MAX_LOCKOUT_S
        }
        if len(keep) > MAX_ADDRESSES:
            newest = sorted(keep.items(), key=lambda item: item[1]["last"])[-MAX_ADDRESSES:]
            keep = dict(newest)
        self._entries = keep
        try:
            atomic_write(self.path, json.dumps(keep).encode("utf-8"), PRIVATE_FILE)
        except OSError as exc:  # a full disk must not open the door: the count stays in memory
            log.error("cannot save wrong-PIN counts: %s", exc)

    @staticmethod
    def _remaining(entry: dict[str, float] | None, now: float) -> float:
        """Seconds the address stays locked. Never more than the lock's own length: a Pi's
        clock that came back hours behind after a power cut must not lengthen it."""
        if entry is None:
            return 0.0
        return max(0.0, min(entry["locked_until"] - now, entry["locked_for"]))

    def locked_for_s(self, address: str | None) -> float:
        with self._lock:
            return self._remaining(self._entries.get(client_key(address)), self._clock())

    def begin(self, address: str | None) -> Attempt:
        """Before a PIN is checked: refused when the address is locked or has as many checks in
        flight as it has tries left."""
        key = client_key(address)
        with self._lock:
            entry = self._entries.get(key)
            remaining = self._remaining(entry, self._clock())
            if remaining > 0:
                return Attempt("locked", remaining)
            failures = int(entry["failures"]) if entry else 0
            if failures + self._in_flight.get(key, 0) >= self.max_failures:
                return Attempt("locked", 1.0)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return Attempt("go")

    def _landed(self, key: str) -> None:
        left = self._in_flight.get(key, 1) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    def cancel(self, address: str | None) -> None:
        """A check that `begin` let through but that did not happen."""
        with self._lock:
            self._landed(client_key(address))

    def finish(self, address: str | None, good: bool) -> GuardResult:
        key = client_key(address)
        with self._lock:
            now = self._clock()
            self._landed(key)
            entry = self._entries.get(key)
            if good:
                if entry is not None:
                    del self._entries[key]
                    self._save()
                return GuardResult("ok")
            if entry is None:
                entry = {
                    "failures": 0.0,
                    "lockouts": 0.0,
                    "locked_until": 0.0,
                    "locked_for": 0.0,
                    "last": now,
                }
                self._entries[key] = entry
            entry["failures"] += 1
            entry["last"] = now
            if entry["failures"] >= self.max_failures:
                duration = min(self.lockout_s * 2 ** int(entry["lockouts"]), MAX_LOCKOUT_S)
                entry["lockouts"] += 1
                entry["failures"] = 0
                entry["locked_until"] = now + duration
                entry["locked_for"] = duration
                self._save()
                return GuardResult("locked", locked_for_s=duration)
            self._save()
            return GuardResult("wrong", attempts_left=self.max_failures - int(entry["failures"]))
