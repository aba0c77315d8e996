"""Long fuzzing runs of the robustness properties: the CI runs each with a few dozen examples.

Runs the hypothesis-driven tests of tests/robustness (random and damaged badge payloads through
the rules, the scan path and the wedge endpoint; random JSON at every kiosk API route; hostile
forms, queries and path arguments at every staff and kiosk route; non-ASCII, overlong and binary
values in every header, cookie and token both apps read) with --examples examples each,
and prints how many requests or scans that was, how long it took, and what failed (pytest's
report, with hypothesis's smallest failing example, follows a failure).

    .venv/bin/python bench/fuzz.py                     # 2,000 examples per property
    .venv/bin/python bench/fuzz.py --examples 200      # a quick look
    CADRE_TEST_POSTGRES_URL=... .venv/bin/python bench/fuzz.py   # the API walks on PostgreSQL too

Figures on this 2-core machine move with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = [
    "tests/robustness/test_scan_payloads.py::test_random_payloads_are_refused_with_a_reason_by_the_rules",
    "tests/robustness/test_scan_payloads.py::test_damaged_badges_are_refused_through_the_scan_path",
    "tests/robustness/test_scan_payloads.py::"
    "test_damaged_badges_typed_by_a_wedge_scanner_are_refused_unless_they_clean_up_to_the_badge",
    "tests/robustness/test_scan_payloads.py::"
    "test_the_wedge_endpoint_answers_every_payload_with_json_and_never_a_server_error",
    "tests/robustness/test_api_garbage.py::test_random_json_at_the_kiosk_api_is_refused_in_json",
    "tests/robustness/test_api_garbage.py::test_every_staff_route_answers_hostile_forms_and_queries",
    "tests/robustness/test_api_garbage.py::test_the_login_pages_answer_hostile_forms",
    "tests/robustness/test_api_garbage.py::"
    "test_every_kiosk_route_answers_hostile_forms_queries_and_json",
    "tests/robustness/test_hostile_headers.py::"
    "test_every_kiosk_route_takes_hostile_headers_tokens_and_cookies",
    "tests/robustness/test_hostile_headers.py::"
    "test_every_staff_route_takes_hostile_headers_tokens_and_cookies",
    "tests/robustness/test_hostile_headers.py::test_every_kiosk_api_route_takes_hostile_headers",
]
# Requests (or scans) one example of each property makes.
PER_EXAMPLE = {
    "test_random_payloads_are_refused": 1,
    "test_damaged_badges_are_refused_through": 1,
    "test_damaged_badges_typed": 1,
    "test_the_wedge_endpoint": 1,
    "test_random_json_at_the_kiosk_api": 4,
    "test_every_staff_route_answers": 20,
    "test_the_login_pages": 3,
    "test_every_kiosk_route_answers": 22,
    "test_every_kiosk_route_takes_hostile": 37,
    "test_every_staff_route_takes_hostile": 62,
    "test_every_kiosk_api_route_takes": 12,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per property")
    args = parser.parse_args()
    env = dict(os.environ, ROBUSTNESS_EXAMPLES=str(args.examples))
    total_failed = 0
    print(f"{args.examples} examples per property")
    for test in PROPERTIES:
        name = test.rsplit("::", 1)[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
        per = next((n for key, n in PER_EXAMPLE.items() if name.startswith(key)), 1)
        passed = re.search(r"(\d+) passed", last)
        runs = int(passed.group(1)) if passed else 1  # once per store for the centre's walks
        print(
            f"  {name[:70]:70s} {took:7.1f} s  ~{args.examples * per * runs:>8,} "
            f"requests/scans  {last}"
        )
        if done.returncode != 0:
            total_failed += 1
            print(done.stdout[-6000:])
    print("all properties held" if not total_failed else f"{total_failed} properties failed")
    sys.exit(1 if total_failed else 0)


if __name__ == "__main__":
    main()
