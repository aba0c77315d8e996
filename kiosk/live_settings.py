"""Settings from the centre, applied while the kiosk runs where that is safe.

The sync agent writes what the centre pushed into kiosk.toml (kiosk/enrolment.py,
`apply_settings`, after checking it against the settings model), then calls `take_from_centre`.
That reads kiosk.toml again and compares it with the settings the kiosk runs on:

- what the running parts read afresh at each use takes effect at once: the rules' repeat
  window and longest shift (the next scan), sounds, the arrive/leave buttons, how long a result
  stays and a forced mode lasts, the site's name, the language (the screen reloads its page);
  photo capture and the face check when their parts were built at start (turning either on for
  a kiosk that had neither needs the camera path rebuilt);
- everything else (camera, sync timings, retention, store sizes, the time zone and the service
  day's start, which would move records between days under the lead's eyes) waits for the next
  start, and the kiosk says so: on the lead's readiness panel, and in its heartbeat to the
  centre, whose kiosks page shows it.

What the centre may never set (who the kiosk is, which centre it trusts, where it listens and
reads frames, who sees its screen, the lead's PIN: sync.protocol's `pushable`) is refused before
it reaches kiosk.toml and reported as refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiosk import settings as kiosk_settings
from kiosk.centre_settings import CentreSettings
from kiosk.rules import RuleSettings
from kiosk.settings import KioskSettings
from sync.config import SettingsError

if TYPE_CHECKING:
    from kiosk.services import KioskServices

log = logging.getLogger(__name__)

RULE_SETTINGS = frozenset({"repeat_window_s", "longest_shift_h"})
# Read from services.settings at each use (a page, a scan, a forced mode).
READ_AT_USE = frozenset(
    {
        "sounds",
        "show_arrive_leave_buttons",
        "result_display_s",
        "forced_kind_s",
        "site_name",
        "face_wait_s",
        "face_lookback_s",
        "updates_enabled",
        "update_busy_hours",
        "update_idle_s",
    }
)
# The screen's page holds these from its load: it is told to load again.
SCREEN_RELOADS = frozenset({"sounds", "show_arrive_leave_buttons", "result_display_s", "language"})


def live_now(key: str, services: KioskServices) -> bool:
    """Whether a change of `key` can take effect in this running kiosk."""
    if key in RULE_SETTINGS or key in READ_AT_USE or key == "language":
        return True
    if key == "photo_capture":
        return services.photos is not None  # the store, and the camera's frames, are there
    if key == "require_face":
        return services.faces is not None
    return False


class LiveSettings:
    """Applies the centre's settings to running services; one call at a time."""

    def __init__(
        self, services: KioskServices, load: Callable[[], KioskSettings] | None = None
    ) -> None:
        """`load`: reads the settings as a start would (default: kiosk.toml in the instance
        folder, and the environment)."""
        self.services = services
        self.load = load or (lambda: kiosk_settings.load(services.instance))
        self._lock = threading.Lock()

    def take_from_centre(self, version: int, problem: str, refused: list[str]) -> CentreSettings:
        with self._lock:
            state = self.services.centre_settings
            state.version, state.problem, state.refused = version, problem, sorted(refused)
            try:
                fresh = self.load()
            except (SettingsError, ValueError) as exc:
                state.problem = f"kiosk.toml does not read: {exc}"
                log.warning("%s", state.problem)
                return state
            running = self.services.settings
            changed = [
                name
                for name in KioskSettings.model_fields
                if getattr(fresh, name) != getattr(running, name)
            ]
            now = [name for name in changed if live_now(name, self.services)]
            if now:
                self._apply(running, {name: getattr(fresh, name) for name in now})
            # What still differs from kiosk.toml waits for a start (a later push may have put
            # back a value set before, so it is worked out anew each time).
            state.applied = now
            state.after_restart = [name for name in changed if name not in now]
            if now:
                log.info("settings from the centre applied at once: %s", ", ".join(now))
            if state.after_restart:
                log.info("settings from the centre after restart: %s", state.after_restart)
            return state

    def _apply(self, running: KioskSettings, values: dict[str, Any]) -> None:
        services = self.services
        updated = running.model_copy(update=values)
        if RULE_SETTINGS & values.keys():
            services.rules.use_settings(RuleSettings.from_settings(updated))
        if "language" in values:
            services.words = services.words.in_language(updated.language)
        services.settings = updated
        if SCREEN_RELOADS & values.keys():
            services.bus.publish("reload", {"reason": "settings"})
