"""Badge sheets: badges per second for the PDF, and the time for 40,000.

    .venv/bin/python bench/badges.py                        # 500 and 2,000 badges, both layouts
    .venv/bin/python bench/badges.py --badges 40000         # the whole city, for real
    .venv/bin/python bench/badges.py --code-root ../main    # the same, with another checkout's
                                                            # code (a baseline in the same run)

A fresh SQLite store gets a roster (random common Chinese names, real units and 400 sites), then
the same steps as a print job: issue the badges (sign each token, store the serials) and write the
sheets (QR codes, names in the CJK font with its fallbacks, the font subset once for the document,
the file written). Printed per run: seconds to issue, to draw, to write out, badges per second
over the whole, and 40,000 estimated as the fixed cost (fonts, writing) plus 40,000 times the cost
of a badge measured between the two sizes. Target: 40,000 in under 5 minutes.

Wall time drifts with the machine's load (several engineers share it): compare in one run. CPU
time (this process's) is what the work costs on a core of its own.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彬鹏辉建国志宇浩然"
UNITS = [
    d + o
    for d in ("东城区", "西城区", "朝阳区", "海淀区", "丰台区", "通州区")
    for o in ("卫生健康委员会", "教育委员会", "民政局", "人力资源和社会保障局")
]
WHOLE_CITY = 40_000


def run(count: int, layout: str, folder: Path) -> dict[str, float]:
    from central import badges, fonts, keys, roster
    from central.db.engine import create_schema, make_engine
    from central.roster_file import RosterRow

    rng = random.Random(count)
    engine = make_engine(f"sqlite:///{folder / f'central-{count}-{layout}.db'}")
    create_schema(engine)
    rows = [
        RosterRow(
            n,
            f"BJ{n:06d}",
            rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
            rng.choice(UNITS),
            f"S{n % 400:03d}",
            None,
        )
        for n in range(count)
    ]
    roster.import_roster(engine, rows)
    key_path = folder / "issuing_key.pem"
    keys.create_issuing_key(key_path)
    private_key = keys.load_issuing_key(key_path)
    if hasattr(fonts, "font_set"):  # with the fallback fonts (this branch)
        font, _ = fonts.font_set(
            Path(fonts.DEFAULT_FONT_FILE), 0, getattr(fonts, "DEFAULT_FALLBACK_FILES", ())
        )
    else:  # an older checkout: one font
        font = fonts.require_font(Path(fonts.DEFAULT_FONT_FILE))

    started = time.perf_counter()
    cpu_started = time.process_time()
    issued = badges.issue_badges(engine, private_key, today=date(2026, 11, 29))
    issued_at = time.perf_counter()
    marks: list[float] = []
    out = folder / f"badges-{count}-{layout}.pdf"
    try:
        badges.render_sheets(
            issued, out, layout, font, writing=lambda: marks.append(time.perf_counter())
        )
    except TypeError:  # an older checkout has no `writing` hook: drawing and writing as one
        badges.render_sheets(issued, out, layout, font)
    ended = time.perf_counter()
    cpu = time.process_time() - cpu_started
    engine.dispose()
    drawn_at = marks[0] if marks else ended
    return {
        "issue": issued_at - started,
        "draw": drawn_at - issued_at,
        "write": ended - drawn_at,
        "total": ended - started,
        "cpu": cpu,
        "bytes": out.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--badges", type=int, nargs="+", default=[500, 2000])
    parser.add_argument(
        "--layout", choices=["a6-on-a4", "54x90-2x5"], nargs="+", default=["54x90-2x5", "a6-on-a4"]
    )
    parser.add_argument(
        "--code-root",
        type=Path,
        default=ROOT,
        help="a checkout whose central/ package to measure (default: this one)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.code_root.resolve()))
    importlib.invalidate_caches()
    import central

    print(f"code: {Path(central.__file__).resolve().parent.parent}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-badges-") as name:
        folder = Path(name)
        for layout in args.layout:
            results = []
            for count in sorted(args.badges):
                figures = run(count, layout, folder)
                results.append((count, figures))
                print(
                    f"{layout:10} {count:6} badges: issue {figures['issue']:6.1f} s, "
                    f"draw {figures['draw']:6.1f} s, write {figures['write']:5.1f} s, total "
                    f"{figures['total']:6.1f} s = {count / figures['total']:6.1f} badges/s; "
                    f"CPU {figures['cpu']:6.1f} s = {count / figures['cpu']:6.1f} badges/s; "
                    f"{figures['bytes'] / 1e6:5.1f} MB"
                )
            if len(results) >= 2 and results[-1][0] != WHOLE_CITY:
                (small, a), (large, b) = results[0], results[-1]
                for clock, what in (("total", "wall"), ("cpu", "CPU (an idle core)")):
                    per_badge = (b[clock] - a[clock]) / (large - small)
                    fixed = max(0.0, a[clock] - per_badge * small)
                    estimate = fixed + per_badge * WHOLE_CITY
                    print(
                        f"{layout:10} 40,000 badges estimated, {what}: {estimate / 60:.1f} min "
                        f"({per_badge * 1000:.2f} ms a badge + {fixed:.1f} s fixed)"
                    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
