"""Where a running kiosk stands with the settings its centre sent (kiosk/live_settings.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.protocol import SettingsReport


@dataclass
class CentreSettings:
    """Where the kiosk stands with the centre's settings (shown on readiness, sent in the
    heartbeat)."""

    version: int = 0
    applied: list[str] = field(default_factory=list)  # applied at once, last time
    after_restart: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    problem: str = ""

    def report(self) -> SettingsReport | None:
        """None while the centre has sent no settings: nothing to say."""
        if not (self.version or self.after_restart or self.refused or self.problem):
            return None
        return SettingsReport(
            version=self.version,
            after_restart=self.after_restart[:100],
            refused=self.refused[:100],
            problem=self.problem[:500],
        )
