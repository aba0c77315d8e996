"""The demo's sample data: cadres with Chinese names at three sites, their badges read back from
the printed sheet as a camera would, and a forged copy of one.

Imported by scripts/demo.py, which runs with scripts/ on its import path.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from demo_processes import DemoError

SITES = [
    ("BJ-DC-01", "东城区 安定门集合点"),
    ("BJ-XC-02", "西城区 白塔寺集合点"),
    ("BJ-CY-03", "朝阳区 团结湖集合点"),
]
KIOSK_SITE = SITES[0][0]
CADRES = 30
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华玉萍红玲燕鹏辉宇浩然轩欣怡涵诺桐昕睿博文嘉"
UNITS = ["东城区卫生健康委员会", "西城区民政局", "朝阳区教育委员会", "市人力资源和社会保障局"]


def write_sample_roster(path: Path) -> None:
    rng = random.Random(20261129)
    with path.open("w", encoding="gb18030", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["编号", "姓名", "单位", "站点", "站点名称"])
        for number in range(1, CADRES + 1):
            site_id, site_name = SITES[(number - 1) % len(SITES)]
            name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
            writer.writerow([f"BJ{number:05d}", name, rng.choice(UNITS), site_id, site_name])


def read_badges(pdf: Path) -> list[str]:
    """Every QR code on the sheets, read from the pages rendered at 150 dpi as a camera would."""
    try:
        import pypdfium2 as pdfium
        import zxingcpp
    except ImportError as exc:
        raise DemoError(f"{exc.name} is missing; run `make demo`, which installs it") from exc
    document = pdfium.PdfDocument(str(pdf))
    try:
        payloads = []
        for page in document:
            image = page.render(scale=150 / 72).to_pil()
            codes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
            payloads += [code.text for code in codes]
    finally:
        document.close()
    return payloads


def badges_by_cadre(issuing_key: Path, pdf: Path) -> dict[str, str]:
    """cadre id -> payload, each badge checked with the centre's public key as a kiosk does."""
    from central.keys import public_keyring
    from sync.badge_token import verify_token

    keyring = public_keyring(issuing_key)
    found = {}
    for payload in read_badges(pdf):
        check = verify_token(payload, keyring)
        if check.valid and check.cadre_id:
            found[check.cadre_id] = payload
    return found


def forge(payload: str) -> str:
    """One character of the signature changed: what a photocopied-and-edited badge gives."""
    middle = len(payload) // 2
    return payload[:middle] + ("A" if payload[middle] != "A" else "B") + payload[middle + 1 :]


@dataclass(frozen=True)
class Shown:
    payload: str
    label: str
