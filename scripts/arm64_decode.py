"""Badge pictures for the arm64 job, and the comparison of what x86 and arm64 decoded.

    python scripts/arm64_decode.py make-badges DIR [--count N]
    python scripts/arm64_decode.py compare X86.jsonl ARM64.jsonl [--expected DIR/expected.json]

make-badges draws signed badge tokens (a throwaway key) as a camera might see them: scaled,
turned, blurred, noisy, some saved as JPEG, with the texts in expected.json. compare reads the
JSON lines of `kiosk decode` from both machines (run in the same folder on the same relative
paths), prints each difference and exits 1 when any file's texts differ, or when a badge with an
expected text was read wrongly on either machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

TURNS = (0.0, 7.0, -12.0, 25.0, 45.0, -60.0)
SCALES = (2, 3, 4)


def make_badges(folder: Path, count: int) -> None:
    import cv2
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from scanner.demo import qr_modules
    from sync.badge_token import issue_token

    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    rng = np.random.default_rng(15)
    expected: dict[str, str] = {}
    for number in range(count):
        token = issue_token(key, f"AR{number:05d}", 1 + number % 3, date(2026, 11, 30))
        modules = qr_modules(token)
        scale = SCALES[number % len(SCALES)]
        code = np.kron(np.where(modules, 0, 255).astype(np.uint8), np.ones((scale, scale)))
        code = code.astype(np.uint8)
        background = 170 + number % 60
        canvas = np.full((480, 640), background, dtype=np.uint8)
        top = (480 - code.shape[0]) // 2
        left = (640 - code.shape[1]) // 2
        canvas[top : top + code.shape[0], left : left + code.shape[1]] = code
        turn = cv2.getRotationMatrix2D((320, 240), TURNS[number % len(TURNS)], 1.0)
        picture = cv2.warpAffine(canvas, turn, (640, 480), borderValue=background)
        if number % 4 == 1:
            picture = cv2.GaussianBlur(picture, (3, 3), 0.8)
        if number % 4 == 2:
            noise = rng.normal(0, 12, picture.shape)
            picture = np.clip(picture.astype(np.float64) + noise, 0, 255).astype(np.uint8)
        name = f"badge-{number:02d}.jpg" if number % 3 == 0 else f"badge-{number:02d}.png"
        if name.endswith(".jpg"):
            cv2.imwrite(str(folder / name), picture, [cv2.IMWRITE_JPEG_QUALITY, 70])
        else:
            cv2.imwrite(str(folder / name), picture)
        expected[name] = token
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"arm64_decode: {count} badge pictures in {folder}")


def read_lines(path: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            results[record["file"]] = record
    return results


def compare(x86_path: Path, arm_path: Path, expected_path: Path | None) -> int:
    x86 = read_lines(x86_path)
    arm = read_lines(arm_path)
    expected: dict[str, str] = {}
    if expected_path is not None:
        folder = expected_path.parent.name
        expected = {
            f"{folder}/{name}": text for name, text in json.loads(expected_path.read_text()).items()
        }
    problems: list[str] = []
    for name in sorted(set(x86) | set(arm)):
        if name not in x86 or name not in arm:
            problems.append(f"{name}: decoded on {'x86 only' if name in x86 else 'arm64 only'}")
            continue
        x86_texts = x86[name].get("texts", x86[name].get("error"))
        arm_texts = arm[name].get("texts", arm[name].get("error"))
        if x86_texts != arm_texts:
            problems.append(f"{name}: x86 {x86_texts!r} but arm64 {arm_texts!r}")
        if name in expected and arm_texts != [expected[name]]:
            problems.append(f"{name}: read {arm_texts!r}, expected the badge's token")
    read = sum(1 for record in arm.values() if record.get("texts"))
    for problem in problems:
        print(f"arm64_decode: DIFFERENT {problem}")
    print(
        f"arm64_decode: {len(arm)} files, {read} with a code read, "
        f"{len(problems)} differences between x86 and arm64; median decode "
        f"x86 {median_ms(x86)}, arm64 (emulated) {median_ms(arm)}"
    )
    return 1 if problems or not arm or not x86 else 0


def median_ms(results: dict[str, dict]) -> str:
    times = sorted(record.get("ms", 0.0) for record in results.values())
    return f"{times[len(times) // 2]:.1f} ms" if times else "(nothing decoded)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-badges")
    make.add_argument("folder", type=Path)
    make.add_argument("--count", type=int, default=18)
    check = commands.add_parser("compare")
    check.add_argument("x86", type=Path)
    check.add_argument("arm64", type=Path)
    check.add_argument("--expected", type=Path)
    args = parser.parse_args()
    if args.command == "make-badges":
        make_badges(args.folder, args.count)
        return 0
    return compare(args.x86, args.arm64, args.expected)


if __name__ == "__main__":
    sys.exit(main())
