"""One-time form keys: each of the lead's forms answers once, however often it is sent.

A double tap, a second phone reloading a POST, a flaky network that retries: each sends the same
form again. Every form the lead page renders carries its own `form_key` (when it was issued, a
random part, and a MAC by the instance's secret, so its age cannot be forged). The first POST of a
key does the work and writes a receipt; a later POST of the same key gets the first answer again
(the same message, the same page) and changes nothing. A key used with other fields (a back button
and another form filled into it) is refused.

Receipts outlive restarts: `lead-forms.jsonl` in the instance folder, one fsync'd line each,
loaded at start and compacted there (receipts older than RECEIPT_KEEP_S are dropped; keys expire
sooner, after FORM_KEY_TTL_S, so no expired receipt can be replayed into a second action).

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
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

FORM_FIELD = "form_key"
API_HEADER = "Idempotency-Key"
RECEIPTS_FILE = "lead-forms.jsonl"
FORM_KEY_TTL_S = 24 * 3600.0
RECEIPT_KEEP_S = 48 * 3600.0
MAX_API_KEY = 100
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
    ) -> None:
        self.path = path
        self._secret = secret
        self._wall = wall
        self.lock = threading.RLock()
        self._receipts: dict[str, Receipt] = {}
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

    def forget(self, key: str) -> None:
        """The action recorded nothing (refused): a copy of the POST may simply run again."""
        digest = self.digest(key)
        with self.lock:
            if digest in self._receipts:
                self._append(json.dumps({"key": digest, "forget": True}).encode() + b"\n")
                del self._receipts[digest]

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _load(self) -> None:
        """Read the receipts back (a torn last line is a crash mid-write: skipped), then write
        the file again without the old ones, atomically."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        oldest = self._wall() - RECEIPT_KEEP_S
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
            if receipt.at >= oldest:
                kept[receipt.key] = receipt
        self._receipts = kept
        text = "".join(
            json.dumps(asdict(r), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in kept.values()
        )
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError as exc:
            # The old file still holds every receipt: compaction can wait for the next start.
            log.warning("could not compact %s: %s", self.path, exc)
            temporary.unlink(missing_ok=True)
