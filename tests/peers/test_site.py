"""Three kiosks of one site and one of another, in real processes on loopback, the centre away.

Arrive at A, leave at B: a departure at B with the hours; C's lead page shows both; the other
site's kiosk is refused as a peer. Then A and B are cut apart, both scan, the link heals: both
converge, the conflict is flagged, nothing of their own is rewritten. Then the centre comes back:
every record is stored once, from its origin, and the stay pairs across the gates.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from tests.e2e import harness
from tests.e2e.harness import Centre, CentreView, KioskLogView, KioskProcess
from tests.peers.site import Link, key_of, lead_session, signed_get
from tests.waiting import wait_for

PIN = "246810"
SITE, OTHER = "P-SITE", "P-OTHER"
REPEAT_S = 20  # long enough for C to learn B's scan under load


def known_head(kiosk: KioskProcess, origin: str) -> int:
    """The last record of `origin` the kiosk keeps (its peers/ folder, as written)."""
    path = kiosk.instance / "peers" / f"{origin}.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    return json.loads(lines[-1])["seq"] if lines else 0


def peers_named(kiosk: KioskProcess) -> set[str]:
    try:
        data = json.loads((kiosk.instance / "peers.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return set()
    return {p["kiosk_id"] for p in data["peers"]}


def test_a_site_of_three_kiosks_agrees_without_the_centre(tmp_path, monkeypatch):
    # The centre's repeat window as the kiosks' (it pairs stays by the same rule).
    monkeypatch.setenv("CENTRAL_REPEAT_WINDOW_S", str(REPEAT_S))
    centre = Centre(tmp_path / "central")
    centre.init({SITE: 10, OTHER: 3})
    centre.start()
    kiosks: dict[str, KioskProcess] = {}
    links: dict[str, Link] = {}
    try:
        badges = centre.issue_badges(SITE)
        for kiosk_id, site in (("a", SITE), ("b", SITE), ("c", SITE), ("d", OTHER)):
            code = centre.add_kiosk(site, kiosk_id)
            kiosk = KioskProcess(
                tmp_path / kiosk_id,
                {
                    "sync_interval_s": 1,
                    "peer_interval_s": 0.2,
                    "peer_timeout_s": 2,
                    "repeat_window_s": REPEAT_S,
                },
            )
            # Each kiosk is reached by its peers through a link the test can cut.
            links[kiosk_id] = Link(kiosk.port)
            with (kiosk.instance / "kiosk.toml").open("a", encoding="utf-8") as toml:
                toml.write(f'peer_address = "{links[kiosk_id].address}"\n')
            kiosk.enroll(centre.url, code, centre.centre_key)
            kiosk.spawn(env={"KIOSK_LEAD_PIN": PIN})
            kiosks[kiosk_id] = kiosk
        a, b, c, d = (kiosks[k] for k in "abcd")
        for kiosk in kiosks.values():
            kiosk.wait_ready()
        wait_for(
            lambda: all(peers_named(kiosks[k]) == set("abc") - {k} for k in "abc"),
            60,
            "each kiosk of the site to be told of the other two",
        )
        assert peers_named(d) == set()
        centre_port = centre.port
        centre.stop()

        # Arrive at A; B knows it; leave at B: a departure, with the hours worked.
        arrived = a.wedge(badges[0])
        assert arrived["outcome"] == "arrival", arrived
        wait_for(lambda: known_head(b, "a") >= 1, 30, "B to know A's arrival")
        time.sleep(REPEAT_S + 0.5)  # past the repeat window
        left = b.wedge(badges[0])
        assert left["outcome"] == "departure", left
        assert (
            left.get("worked")
            or left.get("worked_s") is not None
            or "工作" in json.dumps(left, ensure_ascii=False)
        ), left
        # The repeat window spans gates too: the same badge again at C is "already checked out".
        wait_for(lambda: known_head(c, "b") >= 1, 30, "C to know B's departure")
        again = c.wedge(badges[0])
        assert again["outcome"] == "repeat", again
        assert again["headline"] in ("已经签退", "Already checked out"), again

        # C's lead page: arrived at A, departed at B.
        lead = lead_session(c.url, PIN)
        summary = lead.get(f"{c.url}/lead/api/summary", timeout=10).json()
        departed = {p["cadre_id"]: p for p in summary["departed"]}
        assert departed[f"{SITE}-0"]["arrived_gate"] == "a"
        assert departed[f"{SITE}-0"]["departed_gate"] == "b"
        site = lead.get(f"{c.url}/lead/api/site", timeout=10).json()
        assert {p["kiosk_id"]: p["state"] for p in site["peers"]} == {"a": "ok", "b": "ok"}

        # The other site's kiosk is no peer: its signed request is refused, and no kiosk of the
        # site asks it for anything.
        refused = signed_get(a.url, key_of(d.instance), OTHER, "d", "a")
        assert refused.status_code == 403
        refused = signed_get(a.url, key_of(d.instance), SITE, "d", "a")
        assert refused.status_code == 403
        assert signed_get(a.url, key_of(b.instance), SITE, "b", "a").status_code == 200
        assert not (a.instance / "peers" / "d.jsonl").exists()

        # Partition: A and B cannot reach each other (nor C them); both scan.
        links["a"].cut()
        links["b"].cut()
        a_out = a.wedge(badges[1])  # arrives at A ...
        b_out = b.wedge(badges[1])  # ... and again at B, which cannot know
        assert (a_out["outcome"], b_out["outcome"]) == ("arrival", "arrival")
        assert a.wedge(badges[2])["outcome"] == "arrival"
        assert b.wedge(badges[3])["outcome"] == "arrival"
        site = lead.get(f"{c.url}/lead/api/site", timeout=10).json()
        wait_for(
            lambda: (
                {
                    p["kiosk_id"]: p["state"]
                    for p in lead.get(f"{c.url}/lead/api/site", timeout=10).json()["peers"]
                }
                == {"a": "unreachable", "b": "unreachable"}
            ),
            20,
            "C to say both peers are unreachable",
        )
        # Scanning went on at C all along.
        assert c.wedge(badges[4])["outcome"] == "arrival"

        links["a"].heal()
        links["b"].heal()
        wait_for(
            lambda: known_head(a, "b") == 3 and known_head(b, "a") == 3,
            90,
            "A and B to converge",
        )
        wait_for(lambda: known_head(c, "a") == 3 and known_head(c, "b") == 3, 90, "C too")
        for kiosk in (a, b):
            session = lead_session(kiosk.url, PIN)
            conflicts = session.get(f"{kiosk.url}/lead/api/site", timeout=10).json()["conflicts"]
            assert [
                (x["cadre_id"], x["kind"], {x["first_kiosk"], x["second_kiosk"]}) for x in conflicts
            ] == [(f"{SITE}-1", "arrival", {"a", "b"})], conflicts
            page = session.get(f"{kiosk.url}/lead/", timeout=10).text
            assert "两次到达" in page and 'id="gate-conflicts"' in page

        # The centre returns on its old address: every record once, from its origin.
        monkeypatch.setattr(harness, "free_port", lambda: centre_port)
        centre.start()
        own = {}
        for kiosk_id in "abc":
            kiosk = kiosks[kiosk_id]
            kiosk.stop()
            own[kiosk_id] = KioskLogView.read(kiosk.instance)
            kiosk.spawn(env={"KIOSK_LEAD_PIN": PIN})
        for kiosk_id in "abc":
            view = own[kiosk_id]
            assert view.verify_ok, view.verify_problems
            # Nothing of another kiosk in its own log: peers' records were never written there.
            assert {e.kiosk_id for e in view.events} == {kiosk_id}
        assert [e.kind for e in own["a"].events] == ["arrival", "arrival", "arrival"]
        assert [e.kind for e in own["b"].events] == ["departure", "arrival", "arrival"]
        assert [e.kind for e in own["c"].events] == ["arrival"]

        def all_stored() -> bool:
            return all(
                len(CentreView.read(centre.engine, k).rows) == len(own[k].events) for k in "abc"
            )

        wait_for(all_stored, 120, "the centre to hold every kiosk's records")
        from central.db.schema import events

        with centre.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(events)).scalar_one()
            by_origin = dict(
                conn.execute(
                    select(events.c.kiosk_id, func.count()).group_by(events.c.kiosk_id)
                ).all()
            )
        assert stored == 7
        assert by_origin == {"a": 3, "b": 3, "c": 1}
        for kiosk_id in "abc":
            view = CentreView.read(centre.engine, kiosk_id)
            assert sorted(view.ids) == sorted(str(e.event_id) for e in own[kiosk_id].events)
            assert view.rejected == 0
        # The centre pairs the stay across the gates as it always did (its stays duty).
        wanted = [("a", "b", "closed")]
        wait_for(lambda: _stays_of(centre, f"{SITE}-0") == wanted, 60, "the stay across gates")

        # C is revoked at the centre: A drops it at its next pull and refuses its requests, and
        # C, shut out, says A refused it.
        centre.cli("kiosk", "revoke", "c")
        wait_for(lambda: peers_named(a) == {"b"}, 30, "A to drop the revoked C")
        assert signed_get(a.url, key_of(c.instance), SITE, "c", "a").status_code == 403

        def c_sees() -> dict[str, str]:
            lead_c = lead_session(c.url, PIN)
            peers = lead_c.get(f"{c.url}/lead/api/site", timeout=10).json()["peers"]
            return {p["kiosk_id"]: p["state"] for p in peers}

        wait_for(lambda: c_sees().get("a") == "refused", 30, "C to be refused by A")
    finally:
        for kiosk in kiosks.values():
            kiosk.close()
        for link in links.values():
            link.close()
        centre.stop()


def _stays_of(centre: Centre, cadre_id: str) -> list[tuple[str | None, str | None, str]]:
    """(arrival kiosk, departure kiosk, state) of each stay the centre paired for the cadre."""
    from central.db.schema import stays

    with centre.engine.connect() as conn:
        rows = conn.execute(
            select(stays.c.arrival_kiosk_id, stays.c.departure_kiosk_id, stays.c.state)
            .where(stays.c.cadre_id == cadre_id)
            .order_by(stays.c.stay_id)
        ).all()
    return [tuple(r) for r in rows]
