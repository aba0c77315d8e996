"""Anything a camera or a keyboard-wedge scanner can hand the kiosk gets a readable refusal.

Random text, random bytes, and above all near-valid badges (one character changed, cut short,
extended, lower-cased, wrapped in whitespace, non-ASCII look-alikes, NUL bytes, huge) go through
the same path a real scan takes: `CheckIn.scan`, `KioskServices.handle_payload` and the wedge
endpoint. None may raise; each must be refused with a reason a person can read (only a payload
that *is* the badge, after the wedge's documented clean-up, may record anything), and the log
must stay whole.
"""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kiosk.rules import normalise_wedge_input
from kiosk.store import verify_log
from sync.badge_token import REASON_TEXT
from tests.kiosk_web.helpers import LOCAL

EXAMPLES = settings(
    # bench/fuzz.py runs these properties far longer through this variable.
    max_examples=int(os.environ.get("ROBUSTNESS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
BADGE_REASONS = set(REASON_TEXT) - {"ok"}
# Characters that look like, or are read as, parts of a badge by careless code.
TRICKY = [
    "\x00",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\u00a0",
    "\u200b",
    "\u202e",
    "\ufeff",
    "²",
    "١",
    "１",
    "Ｂ",
    "ß",
    "İ",
    "\ud800",
    "\U0001f600",
    "=",
    "<",
    "%",
]

any_character = st.characters(codec=None, exclude_categories=())
random_payloads = st.one_of(
    st.text(any_character, max_size=80),
    st.text(alphabet=BASE32 + "CB0123456789", max_size=160),
    st.builds(
        lambda digit, body: "CB" + digit + body,
        st.sampled_from(["0", "1", "2", "9", "²", "١", "１", "¹", "߁", "๑"]),
        st.text(alphabet=BASE32, max_size=160),
    ),
    st.binary(max_size=80).map(lambda raw: raw.decode("latin-1")),
    st.binary(max_size=80).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)


@st.composite
def near_valid(draw: st.DrawFn, token: str) -> str:
    """A real badge token, damaged the way cameras, scanners and people damage codes."""
    position = draw(st.integers(0, len(token) - 1))
    insert = draw(st.one_of(st.sampled_from(TRICKY), st.text(any_character, min_size=1)))
    how = draw(
        st.sampled_from(
            [
                "change",
                "truncate",
                "extend",
                "lower",
                "insert",
                "wrap",
                "repeat",
                "huge",
                "swap",
            ]
        )
    )
    if how == "change":
        replacement = draw(st.sampled_from([*BASE32, *TRICKY, "a", "0", "1", "8", "9"]))
        return token[:position] + replacement + token[position + 1 :]
    if how == "truncate":
        return token[:position]
    if how == "extend":
        return token + draw(st.text(alphabet=BASE32 + "=", min_size=1, max_size=20))
    if how == "lower":
        return token.lower() if draw(st.booleans()) else token[:position] + token[position:].lower()
    if how == "insert":
        return token[:position] + insert + token[position:]
    if how == "wrap":
        return insert + token + insert
    if how == "repeat":
        return token * draw(st.integers(2, 4))
    if how == "huge":
        return token + "A" * draw(st.sampled_from([1_000, 100_000, 1_000_000]))
    # swap two neighbours
    position = min(position, len(token) - 2)
    return token[:position] + token[position + 1] + token[position] + token[position + 2 :]


def assert_readable_refusal(message: dict, payload: str) -> None:
    assert message["outcome"] == "refused", (payload[:80], message)
    assert message["reason"] in BADGE_REASONS, message
    # Words for a person, in the screen's language: never empty, never the bare code.
    assert message["headline"].strip()
    assert message["detail"].strip() and message["detail"] != message["reason"]
    assert message["name"] == ""  # a refused code is nobody's
    assert message["event_id"] is None


def events_recorded(kit) -> int:
    return kit.services.log.last_seq


def failed_scan_lines(kit) -> list[dict]:
    path = kit.instance / "failed-scans.log"
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    return [json.loads(line) for line in lines]


@EXAMPLES
@given(payload=random_payloads)
def test_random_payloads_are_refused_with_a_reason_by_the_rules(kit, payload):
    token = kit.badge("C001")
    assume(payload != token)
    outcome = kit.services.rules.scan(payload, "camera")
    assert outcome.result == "refused"
    assert outcome.reason in BADGE_REASONS
    assert outcome.message.startswith("Refused: ") and len(outcome.message) > len("Refused: ")
    assert outcome.event is None and outcome.name is None
    assert events_recorded(kit) == 0


@EXAMPLES
@given(data=st.data())
def test_damaged_badges_are_refused_through_the_scan_path(kit, data):
    token = kit.badge("C002")
    payload = data.draw(near_valid(token))
    assume(payload != token)
    message = kit.services.handle_payload(payload, "camera")
    assert_readable_refusal(message, payload)
    assert events_recorded(kit) == 0


@EXAMPLES
@given(data=st.data())
def test_damaged_badges_typed_by_a_wedge_scanner_are_refused_unless_they_clean_up_to_the_badge(
    kit, data
):
    token = kit.badge("C003")
    payload = data.draw(st.one_of(near_valid(token), random_payloads))
    before = events_recorded(kit)
    message = kit.services.handle_payload(payload, "wedge")
    if normalise_wedge_input(payload) == token:
        # Caps Lock, a trailing Enter or a scanner's control prefix: still the badge.
        assert message["outcome"] in ("arrival", "departure", "repeat"), message
        assert message["name"] == "王芳"
    else:
        assert_readable_refusal(message, payload)
        assert events_recorded(kit) == before


@EXAMPLES
@given(payload=st.one_of(random_payloads, st.text(any_character, min_size=500, max_size=700)))
def test_the_wedge_endpoint_answers_every_payload_with_json_and_never_a_server_error(kit, payload):
    client = kit.app.test_client()
    response = client.post(
        "/screen/wedge",
        json={"payload": payload},
        headers={"X-Screen-Token": kit.services.screen_token},
        environ_base=LOCAL,
    )
    assert response.status_code in (200, 400), (payload[:80], response.status_code)
    body = response.get_json()
    if response.status_code == 400:
        assert body["error"].strip()  # "no scanned text" / "too long", in words
        assert not payload.strip() or len(payload) > 512
    else:
        assert body["headline"].strip() and body["detail"].strip()
        if normalise_wedge_input(payload) != kit.badge("C001"):
            assert_readable_refusal(body, payload)


def test_hostile_payloads_leave_the_log_whole_and_the_failed_scan_log_short(kit):
    token = kit.badge("C001")
    hostile = [
        "CB²" + token[3:],
        "CB١" + token[3:],  # an Arabic-Indic one where the version digit goes
        "CB１" + token[3:],  # a full-width one
        token + "\x00",
        "\x00" * 10_000,
        token[:-1],
        token.lower(),
        "\ud800" + token,
        token + "\u202e",
        "A" * 1_000_000,
        "CB1" + "A" * 1_000_000,
        "<script>alert(1)</script>",
        "../../etc/passwd",
    ]
    for payload in hostile:
        assert_readable_refusal(kit.services.handle_payload(payload, "camera"), payload)
    assert kit.services.handle_payload(token, "camera")["outcome"] == "arrival"

    report = verify_log(kit.services.log)
    assert report.ok and report.count == 1
    lines = failed_scan_lines(kit)
    assert 0 < len(lines) <= len(hostile)
    limit = kit.services.settings.failed_scan_payload_chars
    for line in lines:
        # Cut short and printable: a megabyte of junk does not land on the SD card.
        assert len(line["payload"]) <= limit + 1
        assert line["payload"].isprintable()
        assert line["reason"] in BADGE_REASONS


@pytest.mark.parametrize("version", ["²", "١", "１", "¹", "߁"])
def test_a_badge_with_a_look_alike_version_digit_is_not_a_badge(kit, version):
    """Only the canonical text of a token is a badge: a non-ASCII digit is refused, not parsed."""
    token = kit.badge("C001")
    assert token[2] == "1"
    altered = token[:2] + version + token[3:]
    outcome = kit.services.rules.scan(altered, "camera")
    assert outcome.result == "refused"
    assert outcome.reason == "foreign"
    assert events_recorded(kit) == 0


def test_ascii_digits_in_the_version_place_still_say_wrong_version(kit):
    token = kit.badge("C001")
    for digit in string.digits.replace("1", ""):
        outcome = kit.services.rules.scan(token[:2] + digit + token[3:], "camera")
        assert (outcome.result, outcome.reason) == ("refused", "wrong_version")
