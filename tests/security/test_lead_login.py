"""The site lead's login against a hostile LAN and a copied SD card.

- Row 5: 40 wrong PINs sent at once from one phone locked the lead out everywhere (the right PIN
  then got 429), for up to a day with the doubling. Now wrong PINs count per client address, a
  burst gets no more checks than the limit, and a lead on another address logs in.
- Row 3 (its PIN half): a restart (the watchdog's, after a flood) cleared the lockout, giving 10
  fresh guesses per restart. Now the counts are on disk.
- Row 7 (the kiosk's half): logging out ended nothing (the old cookie kept working), and the
  `secret_key` on the card could mint a lead session. Now a session exists only while the kiosk
  lists it (ended by logout, by a new PIN), and the key alone makes none.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from flask.sessions import SecureCookieSessionInterface

from kiosk.app import create_app
from kiosk.lead_auth import AUTH_FILE
from tests.kiosk_web.helpers import PIN, kiosk_settings, login

FLOODER = {"REMOTE_ADDR": "192.0.2.66"}
LEAD = {"REMOTE_ADDR": "192.0.2.10"}


def login_from(client, address: dict, pin: str):
    client.get("/lead/login", environ_base=address)
    with client.session_transaction() as session:
        token = session.get("csrf_token", "")
    return client.post(
        "/lead/login", data={"pin": pin, "name": "x", "csrf_token": token}, environ_base=address
    )


def test_a_flood_of_wrong_pins_from_one_phone_never_locks_out_the_lead(kit):
    statuses: list[int] = []
    lock = threading.Lock()

    def guess() -> None:
        status = login_from(kit.app.test_client(), FLOODER, "1111").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    limit = kit.services.settings.lead_max_failures
    # At most `limit` of the 40 were checked at all (401); the rest were refused unchecked.
    assert statuses.count(401) + statuses.count(429) == 40
    assert statuses.count(401) <= limit - 1 and statuses.count(429) >= 40 - limit
    # The flooder is locked out, even with the right PIN...
    assert login_from(kit.app.test_client(), FLOODER, PIN).status_code == 429
    # ...and the lead, on another address, is not.
    lead = kit.app.test_client()
    assert login_from(lead, LEAD, PIN).status_code == 302
    assert lead.get("/lead/", environ_base=LEAD).status_code == 200


def test_a_restart_gives_no_fresh_guesses(tmp_path, issuing_key, kit):
    client = kit.app.test_client()
    for _ in range(kit.services.settings.lead_max_failures):
        login_from(client, FLOODER, "1111")
    assert login_from(client, FLOODER, PIN).status_code == 429
    kit.services.stop()

    restarted = create_app(
        kit.instance, kiosk_settings(), clock=kit.clock, scan_loop_factory=lambda _s: None
    )
    try:
        again = restarted.test_client()
        assert login_from(again, FLOODER, PIN).status_code == 429
        assert login_from(again, LEAD, PIN).status_code == 302
        kit.clock.advance(seconds=kit.services.settings.lead_lockout_s + 1)
        assert login_from(restarted.test_client(), FLOODER, PIN).status_code == 302
    finally:
        restarted.extensions["kiosk"].stop()


def test_logging_out_ends_the_session_for_good(kit):
    phone = kit.app.test_client()
    login(phone)
    assert phone.get("/lead/").status_code == 200
    stolen = phone.get_cookie("kiosk_session").value  # a copy, as someone who saw it keeps it
    other = kit.app.test_client()
    login(other)
    with phone.session_transaction() as session:
        token = session["csrf_token"]
    assert phone.post("/lead/logout", data={"csrf_token": token}).status_code == 302

    replay = kit.app.test_client()
    replay.set_cookie("kiosk_session", stolen)
    assert replay.get("/lead/").status_code == 302
    assert replay.get("/lead/api/summary").status_code == 401
    # Another phone's session is its own: still in.
    assert other.get("/lead/").status_code == 200


def test_the_cookie_key_from_a_copied_card_makes_no_session(kit):
    secret = (kit.instance / "secret_key").read_bytes()
    kit.app.secret_key = secret
    signer = SecureCookieSessionInterface().get_signing_serializer(kit.app)
    assert signer is not None
    # What the kiosk checked before: a fingerprint of the PIN made with the key (which the card
    # holds, and a 4-digit PIN is quickly found). And a made-up session id.
    old_style = hmac.new(secret, b"lead-pin:" + PIN.encode(), hashlib.sha256).hexdigest()[:32]
    for lead in ({"pin": old_style, "name": "x"}, {"sid": "made-up", "name": "x"}):
        forged = kit.app.test_client()
        forged.set_cookie("kiosk_session", signer.dumps({"lead": lead, "csrf_token": "t"}))
        assert forged.get("/lead/").status_code == 302
        assert forged.get("/lead/api/summary").status_code == 401
    # The card holds hashes of live sessions, never the ids a cookie needs.
    phone = kit.app.test_client()
    login(phone)
    with phone.session_transaction() as session:
        sid = session["lead"]["sid"]
    assert sid not in (kit.instance / AUTH_FILE).read_text()
