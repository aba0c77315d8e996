"""Network faults between a real kiosk process and a real centre: every scan arrives once.

The kiosk's sync goes through the fault proxy (drops, resets, delays, 500s, garbage and cut
bodies, answers lost after the centre stored the batch, requests delivered twice), half of all
requests faulty. bench/faults.py runs the same trial with 10,000 scans.
"""

from __future__ import annotations

from tests.e2e.trials import network_trial
from tests.fakes.faulty_proxy import FAULTS


def test_every_scan_reaches_the_centre_once_through_a_faulty_network(tmp_path, centre, badges):
    report = network_trial(
        tmp_path,
        centre,
        badges["E2E-NET"],
        kiosk_id="k-net",
        site_id="E2E-NET",
        scans=300,
        fault_rate=0.5,
        batch_size=10,
        every_fault_on_push=True,
    )

    assert report.problems() == []
    delivery = report.delivery
    # Each scan was a new badge: each made one arrival, stored once on each side.
    assert report.outcomes == {"arrival": report.scans_sent}
    assert delivery.stored == delivery.at_centre == delivery.shown == report.scans_sent
    assert (delivery.losses, delivery.duplicates) == (0, 0)
    assert delivery.chain_seq == delivery.max_seq == report.scans_sent
    assert not any(delivery.chain_anomalies.values())
    # Every kind of fault met a push of events, not only a pull or a heartbeat.
    assert set(FAULTS) <= set(report.push_faults), report.push_faults
    # Over every push the centre answered, each event was stored once; the batches sent again
    # (answers lost, cut or doubled) were recognised as duplicates.
    assert report.push_answers["stored"] == report.scans_sent
    assert report.push_answers["duplicates"] > 0
    assert report.push_answers.get("rejected", 0) == 0
