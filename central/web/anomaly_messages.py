"""Anomaly details (written in English, UTC, by central/stays/ and central/ingest/) said in
the page's language and time zone.

A detail no pattern knows is shown as stored rather than hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from flask_babel import gettext

from central.web.context import state

_UTC_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def _local(text: str) -> str:
    """'2026-11-29 06:00:00 UTC' as the centre's local 'MM-DD HH:MM'."""
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return moment.astimezone(state().zone).strftime("%m-%d %H:%M")


def _kind(word: str) -> str:
    return str({"arrival": gettext("arrival"), "departure": gettext("departure")}.get(word, word))


Say = Callable[[re.Match[str]], str]

_PATTERNS: list[tuple[re.Pattern[str], Say]] = [
    (
        re.compile(r"^arrival at (?P<t>.+ UTC) has no departure$"),
        lambda m: gettext("arrival at %(time)s has no departure", time=_local(m["t"][:-4])),
    ),
    (
        re.compile(r"^departure at (?P<t>.+ UTC) without an arrival$"),
        lambda m: gettext("departure at %(time)s without an arrival", time=_local(m["t"][:-4])),
    ),
    (
        re.compile(
            r"^kiosk (?P<k>\S+) recorded (?P<kind>\w+) at (?P<t>.+ UTC); with every kiosk's "
            r"records it counts as (?P<role>\w+)$"
        ),
        lambda m: gettext(
            "kiosk %(kiosk)s recorded %(kind)s at %(time)s; with every kiosk's records it counts "
            "as %(role)s",
            kiosk=m["k"],
            kind=_kind(m["kind"]),
            time=_local(m["t"][:-4]),
            role=_kind(m["role"]),
        ),
    ),
    (
        re.compile(r"^stay of (?P<h>[\d.]+) h from (?P<t>.+ UTC)$"),
        lambda m: gettext("stay of %(h)s h from %(time)s", h=m["h"], time=_local(m["t"][:-4])),
    ),
    (
        re.compile(r"^seen at sites (?P<sites>.+)$"),
        lambda m: gettext("seen at sites %(sites)s", sites=m["sites"]),
    ),
    (
        re.compile(r"^seq (?P<a>\d+) missing before seq (?P<b>\d+)$"),
        lambda m: gettext("records %(a)s missing before record %(b)s", a=m["a"], b=m["b"]),
    ),
    (
        re.compile(r"^seq (?P<b>\d+) does not follow seq (?P<a>\d+)"),
        lambda m: gettext("record %(b)s does not follow record %(a)s", a=m["a"], b=m["b"]),
    ),
    (
        re.compile(r"^two different events with seq (?P<a>\d+)"),
        lambda m: gettext("two different records numbered %(a)s", a=m["a"]),
    ),
    (
        re.compile(r"^boot (?P<boot>\S+): clock not synchronised and no offset known"),
        lambda m: gettext(
            "boot %(boot)s: clock not synchronised and no offset known; times as the kiosk's "
            "clock showed them",
            boot=m["boot"],
        ),
    ),
    (
        re.compile(r"^seq (?P<a>\S+): (?P<reason>.+)$"),
        lambda m: gettext("record %(a)s: %(reason)s", a=m["a"], reason=m["reason"]),
    ),
]


# What each kind of anomaly is called; one gettext per use (a page may list 500 of them).
KIND_LABELS: dict[str, Callable[[], str]] = {
    "two_sites": lambda: gettext("one badge at two sites"),
    "no_arrival": lambda: gettext("departure without arrival"),
    "no_departure": lambda: gettext("no departure"),
    "overlong_stay": lambda: gettext("overlong stay"),
    "uncorrected_time": lambda: gettext("untrusted clock, not corrected"),
    "chain_gap": lambda: gettext("hash chain gap"),
    "chain_fork": lambda: gettext("hash chain fork"),
    "event_conflict": lambda: gettext("same record id, different content"),
    "rejected_event": lambda: gettext("record refused"),
    "kiosk_disagrees": lambda: gettext("kiosk and centre disagree"),
}
# Kinds that mean records may be missing or forged: shown in red, the rest in amber.
SERIOUS = frozenset({"chain_gap", "chain_fork", "event_conflict", "two_sites"})


def kind_label(kind: str) -> str:
    say = KIND_LABELS.get(kind)
    return say() if say else kind


def kind_class(kind: str) -> str:
    return "bad" if kind in SERIOUS else "warn"


def explain(detail: str) -> str:
    for pattern, say in _PATTERNS:
        found = pattern.search(detail)
        if found:
            return say(found)
    return _UTC_TIME.sub(lambda m: _local(m[1]), detail)


def is_known(detail: str) -> bool:
    return any(pattern.search(detail) for pattern, _ in _PATTERNS)
