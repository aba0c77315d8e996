"""Power loss while scanning: the real kiosk process SIGKILLed at random moments while the demo
camera and a keyboard-wedge scanner feed it badges. Every result the screen showed is in the
log after the restarts and reaches the centre exactly once. bench/power_loss.py kills 200 times.
"""

from __future__ import annotations

from tests.e2e.trials import power_trial


def test_every_shown_scan_survives_kills_and_reaches_the_centre_once(tmp_path, centre, badges):
    report = power_trial(
        tmp_path,
        centre,
        badges["E2E-PWR"],
        kiosk_id="k-power",
        site_id="E2E-PWR",
        kills=12,
        live_s=(0.2, 1.0),
    )

    assert report.problems() == []
    assert report.kills == 12
    delivery = report.delivery
    assert delivery.shown > 0 and delivery.stored >= delivery.shown
    assert delivery.shown_not_stored == []  # shown on the screen: in the log after restart
    assert delivery.stored == delivery.at_centre  # every stored event at the centre...
    assert (delivery.losses, delivery.duplicates) == (0, 0)  # ...once
    assert delivery.chain_seq == delivery.max_seq == delivery.last_seq == delivery.stored
    assert not any(delivery.chain_anomalies.values())
    # The same badge again seconds after a restart is a repeat: the restart forgot nothing.
    assert report.rescans_after_restart > 0 and report.rescans_not_repeat == []
    assert report.recoveries.get("events lost", 0) == 0
    assert report.tracebacks == 0
