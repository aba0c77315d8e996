"""`kiosk self-test`: a scan through this version's own code, without touching the kiosk's log.

A throwaway key signs a badge for a made-up cadre; the badge is drawn as a QR image, decoded by
the scanner's pipeline (OpenCV, zxing-cpp or zbar: what a broken wheel or a missing library
breaks first), verified and decided by the check-in rules over an event log in a temporary
folder. The guard runs it from the new version's venv before it trusts the switch.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import qrcode
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.clock import SystemClock, TimeKeeper
from kiosk.roster import RosterSnapshot
from kiosk.rules import CheckIn, RuleSettings
from kiosk.settings import KioskSettings
from kiosk.store import EventLog, StoreConfig
from scanner import decode_frame
from sync.badge_token import issue_token, key_id_of, public_key_to_text

CADRE = "SELFTEST-1"


def self_test() -> str:
    """ "" when a badge scans as an arrival and again as a repeat; else what went wrong."""
    key = Ed25519PrivateKey.generate()
    token = issue_token(key, CADRE, 1, date.today())
    image = qrcode.make(token, border=4, box_size=6).get_image().convert("L")
    frame = np.asarray(image, dtype=np.uint8)
    texts = decode_frame(frame)
    if texts != [token]:
        return f"the scanner read {texts!r} from a test badge"
    public = key.public_key()
    roster = RosterSnapshot(
        site_id="selftest", public_keys={key_id_of(public): public_key_to_text(public)}
    )
    with tempfile.TemporaryDirectory(prefix="kiosk-selftest-") as work:
        log = EventLog(Path(work) / "log", StoreConfig())
        try:
            rules = CheckIn(
                log,
                lambda: roster,
                TimeKeeper(SystemClock()),
                RuleSettings.from_settings(KioskSettings()),
                kiosk_id="selftest",
                site_id="selftest",
            )
            first = rules.scan(texts[0], source="camera")
            again = rules.scan(texts[0], source="camera")
        finally:
            log.close()
    if first.result != "arrival" or first.event is None:
        return f"a test badge was {first.result} ({first.reason}), not an arrival"
    if again.result != "repeat":
        return f"a test badge scanned twice was {again.result}, not a repeat"
    return ""
