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
from collections.abc import Mapping
from pathlib import Path

from kiosk.roster import CadreEntry
from kiosk.store.diskio import DiskIO, atomic_write_bytes

log = logging.getLogger(__name__)

VISITORS_FILE = "visitors.json"
MAX_VISITORS = 2000


class VisitorNames:
    def __init__(self, instance: Path, disk: DiskIO | None = None) -> None:
        self.path = Path(instance) / VISITORS_FILE
        self._disk = disk or DiskIO()
        self._lock = threading.Lock()
        self._names: dict[str, CadreEntry] = self._load()

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
