"""The demo of `make demo`: what runs today, through the real commands, nothing pretended.

Today that is the centre's identity work: a fresh central instance, a sample roster of cadres
with Chinese names imported from a GB18030 CSV (as Chinese Excel saves it), badge sheets printed
to PDF in both layouts, a badge read back from the PDF like a scanner would, checked, revoked and
re-issued. The kiosk and the central server are added as steps here when they exist.

    .venv/bin/python scripts/demo.py          # instance in ./instance/demo-central, made afresh
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance" / "demo-central"
CENTRAL = [sys.executable, "-c", "from central.cli import main; main()"]

SITES = [("BJ-DC-01", "东城区 安定门集合点"), ("BJ-XC-02", "西城区 白塔寺集合点")]
SITES += [("BJ-CY-03", "朝阳区 团结湖集合点")]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华玉萍红玲燕鹏辉宇浩然轩欣怡涵诺桐昕睿博文嘉"
UNITS = ["东城区卫生健康委员会", "西城区民政局", "朝阳区教育委员会", "市人力资源和社会保障局"]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def central(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `central` command against the demo instance, echoing it."""
    shown = " ".join(str(a) for a in args)
    print(f"$ central --instance {INSTANCE.relative_to(ROOT)} {shown}", flush=True)
    result = subprocess.run(
        [*CENTRAL, "--instance", str(INSTANCE.relative_to(ROOT)), *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        check=False,
    )
    print(result.stdout, end="", flush=True)
    if check and result.returncode != 0:
        sys.exit(f"demo: `central {shown}` failed with exit code {result.returncode}")
    return result


def make_central_instance() -> None:
    step("A fresh central instance: settings, database, issuing key (mode 0600)")
    shutil.rmtree(INSTANCE, ignore_errors=True)
    central("init")


def write_sample_roster(path: Path, count: int = 30) -> None:
    rng = random.Random(20261129)
    with path.open("w", encoding="gb18030", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["编号", "姓名", "单位", "站点", "站点名称"])
        for number in range(1, count + 1):
            site_id, site_name = SITES[number % len(SITES)]
            name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
            writer.writerow([f"BJ{number:05d}", name, rng.choice(UNITS), site_id, site_name])


def import_roster() -> None:
    step("Import a sample roster (GB18030 CSV with Chinese headers, as Chinese Excel saves it)")
    roster_file = INSTANCE / "sample-roster.csv"
    write_sample_roster(roster_file)
    print(f"wrote {roster_file.relative_to(ROOT)}: 30 cadres at {len(SITES)} sites")
    central("roster", "import", str(roster_file.relative_to(ROOT)))


def print_badges() -> dict[str, Path]:
    step("Print badge sheets in both layouts")
    sheets = {
        "a6-on-a4": INSTANCE / "badges-a6-on-a4.pdf",
        "54x90-2x5": INSTANCE / "badges-54x90-cards.pdf",
    }
    for layout, pdf in sheets.items():
        central("badges", "print", "--layout", layout, "--out", str(pdf.relative_to(ROOT)))
    return sheets


def scan_first_badge(pdf: Path) -> str:
    """Read the first QR on the sheet's first page, rendered at 150 dpi, as a scanner would."""
    try:
        import pypdfium2 as pdfium
        import zxingcpp
    except ImportError as exc:
        sys.exit(f"demo: {exc.name} is missing; run `make demo`, which installs it")
    document = pdfium.PdfDocument(str(pdf))
    image = document[0].render(scale=150 / 72).to_pil()
    document.close()
    codes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    if not codes:
        sys.exit(f"demo: no QR code found on the first page of {pdf}")
    top_left = min(codes, key=lambda c: (c.position.top_left.y, c.position.top_left.x))
    return top_left.text


def check(payload: str) -> dict[str, object]:
    answer = json.loads(central("badges", "check", payload, check=False).stdout)
    return answer


def check_revoke_reissue(sheet: Path) -> None:
    step(f"Scan the first badge of {sheet.name} and check it")
    payload = scan_first_badge(sheet)
    print(f"QR payload ({len(payload)} characters, no name inside): {payload}")
    cadre_id = str(check(payload)["cadre_id"])

    step("A forged copy (one character changed) and a foreign QR code are refused")
    position = len(payload) // 2
    forged = (
        payload[:position] + ("A" if payload[position] != "A" else "B") + payload[position + 1 :]
    )
    check(forged)
    check("https://example.com/not-a-badge")

    step(f"Revoke {cadre_id}'s badge (lost), check the old one, print a new one")
    central("badges", "revoke", cadre_id)
    check(payload)
    reissued = INSTANCE / f"reissued-{cadre_id}.pdf"
    central("badges", "print", "--cadre", cadre_id, "--out", str(reissued.relative_to(ROOT)))
    check(scan_first_badge(reissued))


def summary(sheets: dict[str, Path]) -> None:
    step("What you have now")
    for layout, pdf in sheets.items():
        print(f"  {layout:10} {pdf.relative_to(ROOT)}")
    print(f"  instance   {INSTANCE.relative_to(ROOT)} (central.toml, central.db, issuing_key.pem)")
    print("Open the PDFs to see the badges. Not in this demo yet: the kiosk and the central")
    print("server; they are built in later issues and will be started here when they exist.")


def main() -> None:
    make_central_instance()
    import_roster()
    sheets = print_badges()
    check_revoke_reissue(sheets["a6-on-a4"])
    summary(sheets)


if __name__ == "__main__":
    main()
