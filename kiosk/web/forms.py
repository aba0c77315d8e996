"""One-time form keys: each of the lead's forms answers once, however often it is sent.

A double tap, a second phone reloading a POST, a flaky network that retries: each sends the same
form again. Every form the lead page renders carries its own `form_key` (when it was issued, a
random part, and a MAC by the instance's secret, so its age cannot be forged). The first POST of a
key does the work and writes a receipt; a later POST of the same key gets the first answer again
(the same message, the same page) and changes nothing. A key used with other fields (a back button
and another form filled into it) is refused.

Receipts outlive restarts: `lead-forms.jsonl` in the instance folder, one fsync'd line each,
loaded at start and compacted then and every COMPACT_EVERY lines (receipts older than
RECEIPT_KEEP_S are dropped; keys expire sooner, after FORM_KEY_TTL_S, so no expired receipt can be
replayed into a second action). Writes go through the store's DiskIO seam, atomically replaced
when compacted.

An action that records an event names it by an id derived from the key (`event_id`): the event
itself is the receipt of last resort. The receipt goes down as "pending" before the event is
appended and "done" after; if the kiosk died between the two, the replay finds the event by its id
instead of recording a second one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiosk.store.diskio import DiskIO, atomic_write_bytes

log = logging.getLogger(__name__)

FORM_FIELD = "form_key"
API_HEADER = "Idempotency-Key"
RECEIPTS_FILE = "lead-forms.jsonl"
FORM_KEY_TTL_S = 24 * 3600.0
RECEIPT_KEEP_S = 48 * 3600.0
MAX_API_KEY = 100
COMPACT_EVERY = 1000
# A key issued a little in the future is a clock step between render and POST, not a forgery.
FUTURE_SLACK_S = 600.0
# Fields that are the form's envelope, not what it asks for.
ENVELOPE = frozenset({"csrf_token", FORM_FIELD, "next"})

State = Literal["pending", "done"]


class FormKeyError(ValueError):
    """The form's key is missing, not ours, or too old: the lead reloads the page."""


@dataclass
class Receipt:
    """What became of one key. `key` is a digest of the key, `fields` of the form's fields."""

    key: str
    action: str
    fields: str
    state: State
    at: float
    category: str = ""
    message: str = ""
    target: str = ""
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)


class FormReceipts:
    """The receipts of one kiosk. Hold `lock` from `get` to the last `put` of one action, so two
    copies of one POST arriving together are answered one after the other."""

    def __init__(
        self,
        path: Path,
        secret: bytes,
        wall: Callable[[], float] = time.time,
        disk: DiskIO | None = None,
    ) -> None:
        self.path = path
        self._secret = secret
        self._wall = wall
        self._disk = disk or DiskIO()
        self.lock = threading.RLock()
        self._receipts: dict[str, Receipt] = {}
        self._appended = 0
        self._load()

    # ------------------------------------------------------------------ keys

    def issue(self) -> str:
        """A new key for one rendered form."""
        issued = int(self._wall())
        nonce = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")
        return f"{issued:x}.{nonce}.{self._mac(f'{issued:x}.{nonce}')}"

    def verify(self, key: str) -> None:
        """Raises FormKeyError unless `key` is one this kiosk issued less than a day ago."""
        parts = key.split(".") if key else []
        if len(parts) != 3 or len(key) > 80:
            raise FormKeyError("missing")
        issued_hex, nonce, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{issued_hex}.{nonce}")):
            raise FormKeyError("foreign")
        try:
            issued = int(issued_hex, 16)
        except ValueError:
            raise FormKeyError("foreign") from None
        age = self._wall() - issued
        if age > FORM_KEY_TTL_S or age < -FUTURE_SLACK_S:
            raise FormKeyError("expired")

    def event_id(self, key: str) -> uuid.UUID:
        """The id of the event this key's action records: the same for every copy of the POST,
        and not one anybody without the instance's secret can aim at another event's id."""
        digest = hmac.new(self._secret, b"lead-form-event:" + key.encode(), hashlib.sha256)
        return uuid.UUID(bytes=digest.digest()[:16], version=4)

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, b"lead-form:" + text.encode(), hashlib.sha256).hexdigest()[
            :24
        ]

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, b"receipt:" + key.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def fields_digest(fields: Mapping[str, Any]) -> str:
        """What the form asked for, so a key reused for other fields is told apart."""
        kept = sorted((k, str(v)) for k, v in fields.items() if k not in ENVELOPE)
        return hashlib.sha256(json.dumps(kept, ensure_ascii=False).encode()).hexdigest()[:32]

    # ------------------------------------------------------------------ receipts

    def get(self, key: str) -> Receipt | None:
        with self.lock:
            return self._receipts.get(self.digest(key))

    def put(self, receipt: Receipt) -> None:
        """Make `receipt` durable (one fsync'd line), then current."""
        line = json.dumps(asdict(receipt), ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.lock:
            self._append(line.encode())
            self._receipts[receipt.key] = receipt
            self._maybe_compact()

    def forget(self, key: str) -> None:
        """The action recorded nothing (refused): a copy of the POST may simply run again."""
        digest = self.digest(key)
        with self.lock:
            if digest in self._receipts:
                self._append(json.dumps({"key": digest, "forget": True}).encode() + b"\n")
                del self._receipts[digest]
                self._maybe_compact()

    def _append(self, data: bytes) -> None:
        fd = self._disk.open_append(self.path)
        try:
            self._disk.write_all(fd, data)
            self._disk.fsync(fd)
        finally:
            self._disk.close(fd)

    def _maybe_compact(self) -> None:
        """After the receipt is current in memory too, so compaction keeps it."""
        self._appended += 1
        if self._appended >= COMPACT_EVERY:
            self._appended = 0
            self._compact()

    def _load(self) -> None:
        """Read the receipts back (a torn last line is a crash mid-write: skipped), then write
        the file again without the old ones."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        kept: dict[str, Receipt] = {}
        for line in raw.splitlines():
            try:
                data = json.loads(line)
                if data.get("forget"):
                    kept.pop(str(data["key"]), None)
                    continue
                receipt = Receipt(**data)
            except (ValueError, TypeError, KeyError):
                continue
            kept[receipt.key] = receipt
        self._receipts = kept
        self._compact()

    def _compact(self) -> None:
        oldest = self._wall() - RECEIPT_KEEP_S
        self._receipts = {k: r for k, r in self._receipts.items() if r.at >= oldest}
        text = "".join(
            json.dumps(asdict(r), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in self._receipts.values()
        )
        try:
            atomic_write_bytes(self._disk, self.path, text.encode(), mode=0o600)
        except OSError as exc:
            # The old file still holds every receipt: compaction can wait for the next time.
            log.warning("could not compact %s: %s", self.path, exc)
