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


def _badge_reason(text: str) -> str:
    """sync.badge_token.REASON_TEXT, said in the page's language."""
    said = {
        "not a cadre badge": lambda: gettext("not a cadre badge"),
        "damaged or incomplete badge code": lambda: gettext("damaged or incomplete badge code"),
        "badge format not supported by this kiosk": lambda: gettext("badge format not supported"),
        "badge signed by an unknown key": lambda: gettext("badge signed by an unknown key"),
        "badge signature does not match (forged or altered)": lambda: gettext(
            "badge signature does not match (forged or altered)"
        ),
    }.get(text)
    return str(said()) if said else text


def _when(text: str) -> str:
    """'at 2026-11-29 06:00:00 UTC' or 'at an unknown time', in the page's language."""
    if text.startswith("at ") and text.endswith(" UTC"):
        return str(gettext("at %(time)s", time=_local(text[3:-4])))
    return str(gettext("at an unknown time"))


def _time_problem(m: re.Match[str]) -> str:
    """What is wrong with a record's time (central/ingest/timeclaims.py)."""
    at = _local(m["t2"][:-4])
    problem = m["problem"]
    if problem.endswith("from the centre's measurement"):
        return str(
            gettext(
                "%(s)s s from where the centre's own measurement puts it (%(time)s)",
                s=problem.split()[0],
                time=at,
            )
        )
    if problem.endswith("from the boot's measured offset"):
        return str(
            gettext(
                "%(s)s s from where the boot's measured offset puts it (%(time)s)",
                s=problem.split()[0],
                time=at,
            )
        )
    if problem == "before its boot started":
        return str(gettext("before its boot started (%(time)s)", time=at))
    if problem == "before the kiosk's earlier records":
        return str(gettext("before the kiosk's earlier records (%(time)s)", time=at))
    if problem == "after it reached the centre":
        return str(gettext("after it reached the centre (%(time)s)", time=at))
    return f"{problem} ({at})"


def _time_claim(m: re.Match[str]) -> str:
    problem = _time_problem(m)
    if m["t3"]:
        return str(
            gettext(
                "record %(a)s dated %(t1)s: %(problem)s; counted at %(t3)s",
                a=m["a"],
                t1=_local(m["t1"][:-4]),
                problem=problem,
                t3=_local(m["t3"][:-4]),
            )
        )
    return str(
        gettext(
            "record %(a)s dated %(t1)s: %(problem)s; offset unknown, not counted",
            a=m["a"],
            t1=_local(m["t1"][:-4]),
            problem=problem,
        )
    )


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
        re.compile(r"^seq (?P<a>\d+): several badges$"),
        lambda m: gettext(
            "record %(a)s: the face that showed this badge showed another cadre's just before",
            a=m["a"],
        ),
    ),
    (
        re.compile(r"^seq (?P<a>\d+): scan record without the badge it was read from"),
        lambda m: gettext(
            "record %(a)s: a scan without the badge it was read from, not counted", a=m["a"]
        ),
    ),
    (
        re.compile(r"^seq (?P<a>\d+): badge proof refused \((?P<why>.+)\): not counted$"),
        lambda m: gettext(
            "record %(a)s: badge proof refused (%(why)s), not counted",
            a=m["a"],
            why=_badge_reason(m["why"]),
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): record for (?P<c>\S+) serial (?P<s>\S+) carries the badge of "
            r"(?P<c2>\S+) serial (?P<s2>\S+): not counted$"
        ),
        lambda m: gettext(
            "record %(a)s for %(c)s (badge %(s)s) carries the badge of %(c2)s (badge %(s2)s), "
            "not counted",
            a=m["a"],
            c=m["c"],
            s=m["s"],
            c2=m["c2"],
            s2=m["s2"],
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): badge serial (?P<s>\S+) of (?P<c>\S+) read (?P<read>.+?), "
            r"revoked (?P<rev>.+): not counted$"
        ),
        lambda m: gettext(
            "record %(a)s: badge %(s)s of %(c)s read %(read)s, revoked %(rev)s, not counted",
            a=m["a"],
            s=m["s"],
            c=m["c"],
            read=_when(m["read"]),
            rev=_when(m["rev"]),
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): (?P<what>void|correction) of (?P<id>\S+), a record of kiosk "
            r"(?P<k>\S+): refused$"
        ),
        lambda m: gettext(
            "record %(a)s voids or corrects %(id)s, a record of kiosk %(k)s: refused "
            "(only staff may correct across kiosks)",
            a=m["a"],
            id=m["id"],
            k=m["k"],
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): (?P<what>void|correction) of (?P<id>\S+), which is no record "
            r"of this kiosk: refused$"
        ),
        lambda m: gettext(
            "record %(a)s voids or corrects %(id)s, which is no record of this kiosk: refused",
            a=m["a"],
            id=m["id"],
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): (?P<what>void|correction) for (?P<c>\S+) of (?P<id>\S+), a "
            r"record of (?P<c2>\S+): refused$"
        ),
        lambda m: gettext(
            "record %(a)s for %(c)s voids or corrects %(id)s, a record of %(c2)s: refused",
            a=m["a"],
            c=m["c"],
            id=m["id"],
            c2=m["c2"],
        ),
    ),
    (
        re.compile(
            r"^seq (?P<a>\d+): record dated (?P<t1>.+? UTC) by boot (?P<b>\S+), "
            r"(?P<problem>.+?) \((?P<t2>[^()]+ UTC)\)"
            r"(?:: counted at (?P<t3>.+ UTC)|: offset unknown, not counted)$"
        ),
        _time_claim,
    ),
    (
        re.compile(r"^seq (?P<a>\S+): several badges$"),
        lambda m: gettext(
            "record %(a)s: the face that showed this badge showed another cadre's just before",
            a=m["a"],
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
    "badge_proof": lambda: gettext("badge not proven"),
    "correction_lane": lambda: gettext("correction of another kiosk's record"),
    "time_claim": lambda: gettext("time that cannot hold"),
    "several_badges": lambda: gettext("one face, several badges"),
}
# Kinds that mean records may be missing or forged: shown in red, the rest in amber.
SERIOUS = frozenset(
    {
        "chain_gap",
        "chain_fork",
        "event_conflict",
        "two_sites",
        "badge_proof",
        "correction_lane",
        "several_badges",
    }
)


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
