"""`central serve` as a user starts it: one process on SQLite (a second is refused, with what to
do instead), a clean stop that hands its duties on at once, and `--workers N` on PostgreSQL."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
import requests
from sqlalchemy import select

from central.db.schema import duty_leases
from central.duties.lease import RELEASED
from tests.e2e.harness import CENTRAL_CMD, REPO, Centre, free_port
from tests.scale.cluster import Cluster, answers, fresh_database


def serve(instance, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CENTRAL_CMD, "--instance", str(instance), "serve", "--host", "127.0.0.1", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def leases_of(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(duty_leases)).all()


def wait_until(check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)
    return value


def test_on_sqlite_a_second_serve_is_refused_and_sigterm_hands_the_duties_on(tmp_path):
    centre = Centre(tmp_path / "central")
    centre.init({"SQ01": 1})
    first_port = free_port()
    first = serve(centre.instance, "--port", str(first_port))
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{first_port}/"))
        second = subprocess.run(
            [*CENTRAL_CMD, "--instance", str(centre.instance), "serve", "--port", str(free_port())],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "SQLite serves from one process only" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        workers = subprocess.run(
            [*CENTRAL_CMD, "--instance", str(centre.instance), "serve", "--workers", "2"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert workers.returncode == 1 and "--workers 2 needs PostgreSQL" in workers.stderr
        # Every periodic duty of the centre, each under its lease in the one process.
        duties = {"stays", "housekeeping", "photo_retention", "release-rollout"}
        held = wait_until(lambda: {row.duty for row in leases_of(centre.engine)} >= duties)
        assert held and {row.duty for row in leases_of(centre.engine)} == duties
    finally:
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=30)
    assert first.returncode == 0, output
    with centre.engine.connect() as conn:
        expiries = conn.execute(select(duty_leases.c.expires_at)).scalars().all()
    assert expiries and set(expiries) == {RELEASED}, "released at the stop, free for the next"
    centre.engine.dispose()
    # Once the first has ended, the same command starts again (the lock died with it).
    again_port = free_port()
    again = serve(centre.instance, "--port", str(again_port))
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{again_port}/"))
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)


@pytest.mark.postgres
def test_workers_start_n_processes_and_a_dead_one_comes_back(postgres_url, tmp_path):
    with fresh_database(postgres_url) as database:
        cluster = Cluster(tmp_path / "central", database.url, {})
        cluster.init({"WK01": 1})
        port = free_port()
        while not all(_free(port + n) for n in range(3)):
            port = free_port()
        supervisor = serve(cluster.instance, "--port", str(port), "--workers", "3")
        lines: list[str] = []
        try:
            urls = [f"http://127.0.0.1:{port + n}/" for n in range(3)]
            wait_until(lambda: all(answers(url) for url in urls))
            pids = _pids_by_port(supervisor, lines, 3)
            victim = pids[port + 1]
            subprocess.run(["kill", "-9", str(victim)], check=True)
            wait_until(lambda: not answers(urls[1]) or _pids_by_port(supervisor, lines, 4))
            again = _pids_by_port(supervisor, lines, 4)
            assert again[port + 1] != victim, "the supervisor started a new process there"
            wait_until(lambda: answers(urls[1]))
            assert requests.get(f"{urls[1]}api/v1/time", timeout=5).ok
        finally:
            supervisor.send_signal(signal.SIGTERM)
            rest, _ = supervisor.communicate(timeout=60)
            lines.append(rest)
        assert supervisor.returncode == 0
        assert not any(answers(url) for url in urls), "every child stopped with it"
        cluster.engine.dispose()


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


SERVING = re.compile(r"on http://127\.0\.0\.1:(\d+)/ \(pid (\d+),")


def _pids_by_port(process: subprocess.Popen[str], lines: list[str], starts: int) -> dict[int, int]:
    """Reads the supervisor's output until `starts` children have said where they serve; the
    newest pid of each port."""
    assert process.stdout is not None
    while sum(len(SERVING.findall(line)) for line in lines) < starts:
        line = process.stdout.readline()
        assert line, "the supervisor's output ended"
        lines.append(line)
    return {int(port): int(pid) for line in lines for port, pid in SERVING.findall(line)}
