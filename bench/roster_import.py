"""How long `central roster import` takes for a 40,000-row roster with Chinese names.

    .venv/bin/python bench/roster_import.py            # 40,000 rows, CSV (GB18030) and XLSX
    .venv/bin/python bench/roster_import.py --rows 2000 --format csv   # a CI-sized run

Generates the file (random common surnames and given names, a few hundred units and sites),
runs the real command (`central init`, then `central roster import`) in a fresh instance, and
prints the seconds: the first import (all inserts), then a re-import with 1 in 10 rows changed.
Target: under 10 s for 40,000 rows. Figures drift with the machine's load; compare in one run.
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CENTRAL = [sys.executable, "-c", "from central.cli import main; main()"]

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙"]
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国志"
    "宇浩然子轩欣怡梓涵一诺雨桐昕睿博文嘉怡思远晨阳佳琪俊杰婷婷"
)
DISTRICTS = ["东城区", "西城区", "朝阳区", "海淀区", "丰台区", "石景山区", "通州区", "顺义区"]
OFFICES = ["卫生健康委员会", "教育委员会", "民政局", "人力资源和社会保障局", "住房和城乡建设委员会"]


def chinese_name(rng: random.Random) -> str:
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2))))


def roster_rows(count: int, rng: random.Random) -> list[list[str]]:
    units = [d + o for d in DISTRICTS for o in OFFICES]
    return [
        [
            f"BJ{i:06d}",
            chinese_name(rng),
            rng.choice(units),
            f"S{rng.randrange(count // 100 + 1):03d}",
        ]
        for i in range(1, count + 1)
    ]


def write_roster(path: Path, rows: list[list[str]]) -> None:
    header = ["编号", "姓名", "单位", "站点"]
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        workbook.save(path)
    else:
        # GB18030 as Chinese Excel saves "CSV", the harder of the two encodings to detect.
        with path.open("w", encoding="gb18030", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(rows)


def timed_import(instance: Path, roster: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [*CENTRAL, "--instance", str(instance), "roster", "import", str(roster)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--format", choices=["csv", "xlsx", "both"], default="both")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = roster_rows(args.rows, rng)
    formats = ["csv", "xlsx"] if args.format == "both" else [args.format]
    print(f"roster import, {args.rows} rows (whole command: start-up, read, validate, store)")
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as tmp:
        for fmt in formats:
            instance = Path(tmp) / f"central-{fmt}"
            subprocess.run(
                [*CENTRAL, "--instance", str(instance), "init"],
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            first = Path(tmp) / f"roster.{fmt}"
            write_roster(first, rows)
            seconds = timed_import(instance, first)
            print(f"  {fmt:4} first import (all new)      {seconds:6.2f} s")
            changed = [
                [cid, name + "改" if i % 10 == 0 else name, unit, site]
                for i, (cid, name, unit, site) in enumerate(rows)
            ]
            second = Path(tmp) / f"roster-2.{fmt}"
            write_roster(second, changed)
            seconds = timed_import(instance, second)
            print(f"  {fmt:4} re-import (1 in 10 changed) {seconds:6.2f} s")
    print("target: under 10 s for 40,000 rows")


if __name__ == "__main__":
    main()
