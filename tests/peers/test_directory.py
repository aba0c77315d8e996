"""Who a kiosk's peers are: the centre names a site's live kiosks in the signed pull answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import kiosks as central_kiosks
from central.app import create_app
from central.settings import CentralSettings
from kiosk.peers.identity import PeerDirectory, load_key
from sync.peers import PeersAnswer, public_text
from sync.protocol import PullAnswer, PullRequest
from tests.badges import write_issuing_key
from tests.sync.helpers import T0, enrolled, load_roster


@pytest.fixture
def client(central_engine, tmp_path):
    write_issuing_key(tmp_path / "issuing_key.pem")
    load_roster(central_engine, {"S01": ["C1"], "S02": ["C9"]})
    app = create_app(
        tmp_path,
        CentralSettings(),
        engine=central_engine,
        now=lambda: T0,
        config={"TESTING": True},
    )
    return app.test_client()


def pull(client, token: str, key: str | None, address: str | None = None) -> PullAnswer:
    asked = PullRequest(peer_key=key, peer_address=address)
    answer = client.post(
        "/api/v1/pull",
        data=asked.model_dump_json(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.json
    return PullAnswer.model_validate(answer.json)


def test_the_centre_names_a_sites_live_peers_and_drops_a_revoked_one(client, central_engine):
    a, token_a = enrolled(central_engine, "S01", "a")
    b, token_b = enrolled(central_engine, "S01", "b")
    c, token_c = enrolled(central_engine, "S01", "c")
    other, token_other = enrolled(central_engine, "S02", "other")
    keys = {k: public_text(Ed25519PrivateKey.generate()) for k in (a, b, c, other)}

    # A kiosk that sends no key (older) gets no `peers`; one that does, the others with a key.
    assert pull(client, token_a, None).peers is None
    assert pull(client, token_a, keys[a], "10.0.0.1:8080").peers == PeersAnswer(
        site_id="S01", peers=[]
    )
    pull(client, token_b, keys[b], "10.0.0.2:8080")
    pull(client, token_other, keys[other], "10.0.0.9:8080")
    seen = pull(client, token_c, keys[c]).peers
    assert seen is not None and seen.site_id == "S01"
    assert [(p.kiosk_id, p.public_key, p.address) for p in seen.peers] == [
        (a, keys[a], "10.0.0.1:8080"),
        (b, keys[b], "10.0.0.2:8080"),
    ]  # not itself, not the other site's kiosk, not a key it never sent

    central_kiosks.revoke(central_engine, b, T0)
    seen = pull(client, token_c, keys[c]).peers
    assert seen is not None and [p.kiosk_id for p in seen.peers] == [a]

    # Not a key: not stored, so nobody lists it.
    pull(client, token_a, "A" * 44)
    seen = pull(client, token_c, keys[c]).peers
    assert seen is not None and seen.peers == []

    # Enrolled again: its old key is dropped until it sends its new one.
    pull(client, token_a, keys[a])
    new = central_kiosks.new_enrolment_code(central_engine, a, T0, timedelta(hours=1))
    central_kiosks.enrol(central_engine, new.code, T0)
    seen = pull(client, token_c, keys[c]).peers
    assert seen is not None and seen.peers == []


def test_a_kiosk_keeps_one_peer_key_and_the_centres_list_of_its_site(tmp_path):
    first = load_key(tmp_path)
    assert public_text(load_key(tmp_path)) == public_text(first)
    assert (tmp_path / "peer_key").stat().st_mode & 0o077 == 0

    directory = PeerDirectory(tmp_path, "S01")
    key = public_text(Ed25519PrivateKey.generate())
    directory.replace(
        PeersAnswer(site_id="S01", peers=[{"kiosk_id": "b", "public_key": key}])  # type: ignore[list-item]
    )
    assert directory.key_of("b") is not None and directory.key_of("x") is None
    assert [p.kiosk_id for p in PeerDirectory(tmp_path, "S01").peers()] == ["b"]
    # A list for another site (a kiosk moved by hand) names no peer here.
    assert PeerDirectory(tmp_path, "S02").peers() == []
