"""Setting a kiosk up by showing it its enrolment code: no keyboard, no typed URL.

A kiosk started without a sync token and without badge keys (`kiosk run` on a fresh card) shows
the set-up screen ("请出示签到机登记码"). What its camera (or a hand scanner) reads then goes here,
not to the check-in rules: an enrolment QR (`central kiosk add` prints and writes one, the
centre's kiosks page shows one) is traded with the centre for the kiosk's token, id, roster and
keys (kiosk/enrolment.py `enroll`, on a thread of its own: the camera keeps reading and the
screen says what is happening); anything else is answered "not an enrolment code". Once
enrolled, the running kiosk takes its new identity, roster and settings, starts its sync agent
and tells the screen to load its normal page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.rules import RuleSettings
from kiosk.services import KioskServices
from kiosk.settings import KioskSettings
from sync.client import Refused, SyncError
from sync.protocol import ENROL_QR_PREFIX, EnrolAnswer, parse_enrolment_qr

log = logging.getLogger(__name__)

# Enrolment codes of every format start so (CKE1|, CKE2|, ...): one is told apart from a badge.
ENROL_QR_FAMILY = ENROL_QR_PREFIX[:3]

Enrol = Callable[[str, str, str], EnrolAnswer]


def needs_setup(services: KioskServices) -> bool:
    """A kiosk with no token and no badge keys can do nothing but be enrolled."""
    return not enrolment.load_token(services.instance) and not services.roster.current.public_keys


class CameraEnrolment:
    """The set-up screen's side of the scan path (`KioskServices.setup`)."""

    def __init__(
        self,
        services: KioskServices,
        app_version: str = "",
        enrol: Enrol | None = None,
        load: Callable[[], KioskSettings] | None = None,
    ) -> None:
        """`enrol(url, code, centre_fingerprint)`: trades the code (default: kiosk/enrolment.py's
        `enroll` into this kiosk's folder and open log); `load`: the settings as a start reads
        them."""
        self.services = services
        self.app_version = app_version
        self.enrol = enrol or self._enrol
        self.load = load or (lambda: kiosk_settings.load(services.instance))
        self._lock = threading.Lock()
        self._busy = False
        self._done = False
        self.last_problem = ""

    def waiting(self) -> bool:
        return not self._done

    def offer(self, payload: str) -> dict[str, Any]:
        """A payload read while the kiosk waits to be enrolled: the screen's answer to it."""
        words = self.services.words
        text = payload.strip()
        if not text.startswith(ENROL_QR_FAMILY):
            return self._say(words.setup("not_a_code"))
        try:
            url, code, fingerprint = parse_enrolment_qr(text)
        except ValueError as exc:
            log.warning("enrolment code not taken: %s", exc)
            return self._say(words.setup("damaged"))
        if fingerprint is None:
            # CKE1 carries no centre key: nothing to check the centre against (docs/security.md).
            log.warning("enrolment code not taken: an old code (CKE1) names no centre key")
            return self._say(words.setup("old_code"))
        with self._lock:
            if self._busy or self._done:
                return words.setup("enrolling")  # the same code, read again meanwhile
            self._busy = True
        threading.Thread(
            target=self._run, args=(url, code, fingerprint), name="kiosk-enrolment", daemon=True
        ).start()
        return self._say(words.setup("enrolling"))

    def _say(self, message: dict[str, Any]) -> dict[str, Any]:
        self.services.bus.publish("scan", message)
        return message

    def _enrol(self, url: str, code: str, fingerprint: str) -> EnrolAnswer:
        return enrolment.enroll(
            self.services.instance,
            url,
            code,
            fingerprint,
            app_version=self.app_version,
            event_log=self.services.log,
        )

    def _run(self, url: str, code: str, fingerprint: str) -> None:
        words = self.services.words
        try:
            answer = self.enrol(url, code, fingerprint)
        except enrolment.EnrolmentError as exc:
            # Not the centre of the code (another key), or a plain http address on a network
            # not said to be trusted: the code was not sent, and still works.
            self._free()
            self.last_problem = str(exc)
            log.warning("enrolment not done: %s", exc)
            self._say(words.setup("untrusted"))
            return
        except Refused as exc:
            self._free()
            self.last_problem = str(exc)
            log.warning("enrolment refused: %s", exc)
            reason = "used" if exc.status == 410 else "unknown" if exc.status == 404 else "refused"
            self._say(words.setup(reason))
            return
        except SyncError as exc:
            self._free()
            self.last_problem = str(exc)
            log.warning("enrolment failed: %s", exc)
            self._say(words.setup("unreachable"))
            return
        except Exception as exc:  # a disk that cannot take the files: say it, keep waiting
            self._free()
            self.last_problem = f"{type(exc).__name__}: {exc}"
            log.exception("enrolment failed")
            self._say(words.setup("failed"))
            return
        try:
            self._become(answer)  # still busy: what is read meanwhile is told to wait
        except Exception as exc:  # kiosk.toml written but unreadable: a restart will tell
            self._free()
            self.last_problem = f"{type(exc).__name__}: {exc}"
            log.exception("enrolled, but the running kiosk could not take its new identity")
            self._say(words.setup("failed"))

    def _free(self) -> None:
        with self._lock:
            self._busy = False

    def _become(self, answer: EnrolAnswer) -> None:
        """Take the identity the centre gave, at once: no restart."""
        services = self.services
        fresh = self.load()
        services.roster.reload()
        services.rules.kiosk_id = fresh.kiosk_id
        services.rules.site_id = fresh.site_id
        services.rules.use_settings(RuleSettings.from_settings(fresh))
        services.words = services.words.in_language(fresh.language)
        services.settings = fresh
        services.start_sync_agent()
        with self._lock:
            self._done = True  # from here badges go to the rules
            self._busy = False
        log.info("enrolled through the camera as %s of site %s", answer.kiosk_id, answer.site_id)
        self._say(services.words.setup("enrolled", kiosk=answer.kiosk_id, site=answer.site_name))
        services.bus.publish("reload", {"reason": "enrolled"})
