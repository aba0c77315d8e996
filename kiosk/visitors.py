"""Names of visitors: cadres of other sites whose valid badges this kiosk accepted.

The kiosk's roster holds its own site's cadres only, so a visitor showed as a bare id. The centre
knows every name: when it answers a push it names the cadres of that push who are not on the
pushing kiosk's site (sync/protocol.py `PushAnswer.names`), and the sync agent hands them here.
Only people whose badge this kiosk read are named to it, so a stolen kiosk token cannot page
through the city's roster, and the name arrives with the first push after the scan, without a
request of its own. Offline, a visitor stays an id until the network returns.

Kept in `visitors.json` in the instance folder (atomic replace), the newest MAX_VISITORS.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from kiosk.roster import CadreEntry
from kiosk.store.diskio import DiskIO, atomic_write_bytes
from sync.protocol import NamesAnswer

log = logging.getLogger(__name__)

VISITORS_FILE = "visitors.json"
MAX_VISITORS = 2000
# A visitor the centre did not name (not pushed yet, or not on its roster) is asked about again
# after this long.
ASK_AGAIN_S = 600.0


class VisitorNames:
    def __init__(
        self,
        instance: Path,
        disk: DiskIO | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(instance) / VISITORS_FILE
        self._disk = disk or DiskIO()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._names: dict[str, CadreEntry] = self._load()
        # Visitors seen without a name -> when the centre was last asked (None: not yet).
        self._unknown: dict[str, float | None] = {}

    def note_seen(self, cadre_id: str) -> None:
        """A badge of another site's cadre was read here: ask the centre for the name."""
        with self._lock:
            if cadre_id not in self._names and cadre_id not in self._unknown:
                self._unknown[cadre_id] = None
                while len(self._unknown) > MAX_VISITORS:
                    del self._unknown[next(iter(self._unknown))]

    def wanted(self) -> list[str]:
        """Visitors to ask the centre about now (the sync agent asks after each pull)."""
        now = self._monotonic()
        with self._lock:
            due = [c for c, at in self._unknown.items() if at is None or now - at >= ASK_AGAIN_S]
            for cadre_id in due:
                self._unknown[cadre_id] = now
        return due

    def learned(self, asked: list[str], answer: NamesAnswer) -> None:
        """The centre's answer: named visitors are kept; the others are asked again later."""
        names = {
            n.cadre_id: CadreEntry(name=n.name, unit=n.unit, site_id=n.site_id)
            for n in answer.names
            if n.cadre_id in asked
        }
        with self._lock:
            for cadre_id in names:
                self._unknown.pop(cadre_id, None)
        self.learn(names)

    def _load(self) -> dict[str, CadreEntry]:
        try:
            data = json.loads(self.path.read_bytes())
            return {str(k): CadreEntry.model_validate(v) for k, v in dict(data).items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            # Only names for the pages: start afresh rather than refuse to start.
            log.warning(
                "visitors: %s unreadable (%s); starting without visitor names", self.path, exc
            )
            return {}

    def entry(self, cadre_id: str) -> CadreEntry | None:
        return self._names.get(cadre_id)

    def learn(self, names: Mapping[str, CadreEntry]) -> None:
        """Remember these names (newest kept); a write failure keeps them in memory only."""
        if not names:
            return
        with self._lock:
            changed = {k: v for k, v in names.items() if self._names.get(k) != v}
            if not changed:
                return
            merged = {k: v for k, v in self._names.items() if k not in changed}
            merged.update(changed)
            while len(merged) > MAX_VISITORS:
                del merged[next(iter(merged))]
            self._names = merged
            data = json.dumps(
                {k: v.model_dump() for k, v in merged.items()}, ensure_ascii=False
            ).encode()
            try:
                atomic_write_bytes(self._disk, self.path, data)
            except OSError as exc:
                log.warning("visitors: could not save %s: %s", self.path, exc)
