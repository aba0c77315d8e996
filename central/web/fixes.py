"""The fix each anomaly offers, tried before it is offered and again before it is saved.

A fix is one or more staff corrections (central/corrections.py) for the anomaly's cadre and day.
Each candidate is tried on a copy of that day: the day's records, its corrections so far and the
candidate's, paired by the same code the stays use (central/stays/pairing.py). A candidate is
offered only when the anomaly is gone afterwards and no other anomaly of that cadre and day
appeared ("clean"): adding an arrival at the wrong time can turn one anomaly into nine.

Anomalies that no correction of records resolves (a kiosk's hash chain, a refused record, a clock
the centre could not correct) are reviewed instead: a member of staff says, with a reason, that
they looked; the review is kept beside the anomaly (anomaly_reviews) and the list hides it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from central import corrections as staff_corrections
from central.db import schema
from central.stays import store as stay_store
from central.stays.pairing import StayRules, pair_day, without_kiosk_corrections

# Anomalies the stays code finds for a (cadre, day): a correction of records can resolve them.
RECORD_KINDS = frozenset(stay_store.STAY_ANOMALIES)
# Anomalies of a kiosk or its records as sent: reviewed, not corrected.
REVIEW_KINDS = frozenset(
    {
        "chain_gap",
        "chain_fork",
        "event_conflict",
        "rejected_event",
        "uncorrected_time",
        # records kept but not counted (central/ingest/proofs.py): staff who know better add
        # the attendance by hand
        "badge_proof",
        "correction_lane",
        "time_claim",
    }
)
MINUTE = timedelta(minutes=1)

Found = tuple[str, str | None, str | None]  # kind, site, record


@dataclass
class Fix:
    """One way to resolve an anomaly: the corrections it would add, and what trying it showed."""

    code: str  # void | add_arrival | add_departure | as_centre | void_site | review
    changes: list[staff_corrections.NewCorrection]
    # Words for the page: (message id kind, values); the template says them.
    record: dict[str, Any] | None = None  # the record it voids or changes
    time: datetime | None = None  # an added record's time (naive UTC)
    kind: str | None = None
    site_id: str | None = None
    duplicate_of: dict[str, Any] | None = None
    resolves: bool = False
    new_anomalies: list[Found] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.resolves and not self.new_anomalies


@dataclass
class Day:
    """One cadre's day as the stays see it: the records, and the corrections so far."""

    cadre_id: str
    day: date
    records: list[dict[str, Any]]
    corrective: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    # A stay still open once the day is over is a "no departure" anomaly (central/anomalies.py
    # lists it from the stays, as pairing cannot know the day is over).
    day_over: bool = False

    def effective(
        self, extra: Sequence[staff_corrections.NewCorrection] = ()
    ) -> list[dict[str, Any]]:
        records = without_kiosk_corrections(self.records, self.corrective)
        corrections = list(self.corrections)
        for number, change in enumerate(extra):
            corrections.append(_as_row(change, -1 - number))
        return staff_corrections.effective_records(records, corrections)

    def findings(
        self, rules: StayRules, extra: Sequence[staff_corrections.NewCorrection] = ()
    ) -> Counter[Found]:
        stays, found = pair_day(self.cadre_id, self.day, self.effective(extra), rules)
        counted: Counter[Found] = Counter((f.kind, f.site_id, f.event_id) for f in found)
        if self.day_over:
            for stay in stays:
                if stay.state == "open" and stay.arrival is not None:
                    counted[("no_departure", stay.site_id, stay.arrival["event_id"])] += 1
        return counted


def _as_row(change: staff_corrections.NewCorrection, number: int) -> dict[str, Any]:
    return {
        "correction_id": number,
        "action": change.action,
        "target_event_id": change.target_event_id,
        "new_event_id": f"proposed-{-number}" if change.action == "add" else None,
        "cadre_id": change.cadre_id,
        "site_id": change.site_id,
        "kind": change.kind,
        "event_time": change.event_time,
    }


def load_day(conn: Connection, cadre_id: str, day: date, day_over: bool = False) -> Day:
    events, corr = schema.events, schema.corrections
    records = [
        dict(r._mapping)
        for r in conn.execute(
            select(*stay_store.EVENT_COLUMNS, events.c.seq, events.c.flags).where(
                events.c.cadre_id == cadre_id,
                events.c.service_day == day,
                events.c.quarantine.is_(None),  # as the stays see the day: counted records only
            )
        )
    ]
    corrective = [
        dict(r._mapping)
        for r in conn.execute(
            select(*stay_store.EVENT_COLUMNS).where(
                events.c.cadre_id == cadre_id,
                events.c.corrects > "",
                events.c.quarantine.is_(None),
            )
        )
    ]
    corrections = [
        dict(r._mapping)
        for r in conn.execute(
            select(corr)
            .where(corr.c.cadre_id == cadre_id, corr.c.service_day == day)
            .order_by(corr.c.correction_id)
        )
    ]
    return Day(cadre_id, day, records, corrective, corrections, day_over)


def try_fix(day: Day, rules: StayRules, fix: Fix, target: Found) -> Fix:
    before = day.findings(rules)
    after = day.findings(rules, fix.changes)
    fix.resolves = after[target] < before[target]
    grown = after - before
    fix.new_anomalies = sorted(grown.elements(), key=lambda f: (f[0], f[1] or "", f[2] or ""))
    return fix


def _change(
    day: Day, staff_user: str, reason: str, site_id: str, **values: Any
) -> staff_corrections.NewCorrection:
    return staff_corrections.NewCorrection(
        cadre_id=day.cadre_id,
        service_day=day.day,
        reason=reason,
        staff_user=staff_user,
        site_id=site_id,
        **values,
    )


def _counted(day: Day, site_id: str | None) -> list[dict[str, Any]]:
    return [r for r in day.effective() if site_id is None or r["site_id"] == site_id]


def _same_kind_before(
    records: list[dict[str, Any]], record: dict[str, Any], window: timedelta
) -> dict[str, Any] | None:
    """The record of the same kind just before `record`, when it is within `window`: the first
    of a double tap or a second scan, which makes `record` a duplicate."""
    earlier = [
        r
        for r in records
        if r["event_id"] != record["event_id"]
        and r["corrected_time"] <= record["corrected_time"]
        and record["corrected_time"] - r["corrected_time"] <= window
    ]
    if not earlier:
        return None
    previous = max(earlier, key=lambda r: r["corrected_time"])
    return previous if previous["kind"] == record["kind"] else None


def _times_between(start: datetime, end: datetime, prefer: Sequence[datetime]) -> list[datetime]:
    """Candidate times inside (start, end), the preferred ones first."""
    return [t for t in prefer if start < t < end]


def candidates(
    day: Day,
    anomaly: dict[str, Any],
    rules: StayRules,
    staff_user: str,
    reason: str,
    day_bounds: tuple[datetime, datetime],
) -> list[Fix]:
    """Every fix tried for `anomaly` (a row of the anomalies list), clean ones first."""
    kind = anomaly["kind"]
    target: Found = (kind, anomaly.get("site_id"), anomaly.get("event_id"))
    if kind not in RECORD_KINDS:
        return []
    records = day.effective()
    by_id = {r["event_id"]: r for r in records}
    record = by_id.get(anomaly.get("event_id") or "")
    site_id = anomaly.get("site_id") or (record["site_id"] if record else None)
    counted = _counted(day, site_id)
    fixes: list[Fix] = []
    window = max(rules.repeat_window * 5, timedelta(minutes=10))
    start, end = day_bounds

    if kind == "no_arrival" and record is not None and site_id is not None:
        first = _same_kind_before(counted, record, window)
        fixes.append(
            Fix(
                "void",
                [
                    _change(
                        day,
                        staff_user,
                        reason,
                        site_id,
                        action="void",
                        target_event_id=record["event_id"],
                    )
                ],
                record=record,
                duplicate_of=first,
            )
        )
        earlier = [r for r in counted if r["corrected_time"] < record["corrected_time"]]
        after_previous = (earlier[-1]["corrected_time"] + MINUTE) if earlier else start + MINUTE
        kiosk_saw = [
            r["corrected_time"]
            for r in day.records
            if r["site_id"] == site_id and r["kind"] == "arrival"
        ]
        for moment in _times_between(
            after_previous - MINUTE,
            record["corrected_time"],
            [*sorted(kiosk_saw), after_previous, record["corrected_time"] - MINUTE],
        ):
            fixes.append(
                Fix(
                    "add_arrival",
                    [
                        _change(
                            day,
                            staff_user,
                            reason,
                            site_id,
                            action="add",
                            kind="arrival",
                            event_time=moment,
                        )
                    ],
                    time=moment,
                    kind="arrival",
                    site_id=site_id,
                )
            )

    elif kind == "no_departure" and record is not None and site_id is not None:
        later = [r for r in counted if r["corrected_time"] > record["corrected_time"]]
        following = later[0] if later else None
        if (
            following is not None
            and following["kind"] == "arrival"
            and _same_kind_before(counted, following, window) is not None
        ):
            fixes.append(
                Fix(
                    "void",
                    [
                        _change(
                            day,
                            staff_user,
                            reason,
                            site_id,
                            action="void",
                            target_event_id=following["event_id"],
                        )
                    ],
                    record=following,
                    duplicate_of=record,
                )
            )
        limit = following["corrected_time"] if following else end
        seen_later = sorted(
            r["corrected_time"]
            for r in day.records
            if r["site_id"] == site_id and record["corrected_time"] < r["corrected_time"] < limit
        )
        prefer = [
            *reversed(seen_later),
            limit - MINUTE,
            min(limit - MINUTE, record["corrected_time"] + rules.overlong - MINUTE),
        ]
        for moment in _times_between(record["corrected_time"], limit, prefer):
            fixes.append(
                Fix(
                    "add_departure",
                    [
                        _change(
                            day,
                            staff_user,
                            reason,
                            site_id,
                            action="add",
                            kind="departure",
                            event_time=moment,
                        )
                    ],
                    time=moment,
                    kind="departure",
                    site_id=site_id,
                )
            )

    elif kind == "kiosk_disagrees" and record is not None and site_id is not None:
        role = "departure" if record["kind"] == "arrival" else "arrival"
        fixes.append(
            Fix(
                "as_centre",
                [
                    _change(
                        day,
                        staff_user,
                        reason,
                        site_id,
                        action="replace",
                        target_event_id=record["event_id"],
                        kind=role,
                        event_time=record["corrected_time"],
                    )
                ],
                record=record,
                kind=role,
            )
        )

    elif kind == "two_sites":
        sites: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            sites[r["site_id"]].append(r)
        for other_site, site_records in sorted(sites.items()):
            fixes.append(
                Fix(
                    "void_site",
                    [
                        _change(
                            day,
                            staff_user,
                            reason,
                            other_site,
                            action="void",
                            target_event_id=r["event_id"],
                        )
                        for r in site_records
                    ],
                    site_id=other_site,
                )
            )

    elif kind == "overlong_stay" and record is not None and site_id is not None:
        # The departure that closed the long stay, moved to the longest normal stay; or, when
        # someone scanned in between, the departure is added at that scan.
        closing = next(
            (
                r
                for r in counted
                if r["corrected_time"] > record["corrected_time"] and r["kind"] == "departure"
            ),
            None,
        )
        if closing is not None:
            seen_between = sorted(
                r["corrected_time"]
                for r in day.records
                if r["site_id"] == site_id
                and record["corrected_time"] < r["corrected_time"] < closing["corrected_time"]
                and r["corrected_time"] - record["corrected_time"] <= rules.overlong
            )
            for moment in reversed(seen_between):
                fixes.append(
                    Fix(
                        "move_departure",
                        [
                            _change(
                                day,
                                staff_user,
                                reason,
                                site_id,
                                action="replace",
                                target_event_id=closing["event_id"],
                                kind="departure",
                                event_time=moment,
                            )
                        ],
                        record=closing,
                        time=moment,
                        kind="departure",
                    )
                )

    tried = [try_fix(day, rules, fix, target) for fix in fixes]
    # One add-fix is enough to offer: the first clean time found (the kiosk's own time first).
    offered: list[Fix] = []
    seen_codes: set[str] = set()
    for fix in sorted(tried, key=lambda f: not f.clean):
        if (
            fix.code in ("add_arrival", "add_departure", "move_departure")
            and fix.code in seen_codes
        ):
            continue
        seen_codes.add(fix.code)
        offered.append(fix)
    return offered
