"""Decoder figures, all from one run: `.venv/bin/python bench/decode.py` (`--quick` for CI size).

1. The real QR photos of shared/data/qr-photos (97 images from zxing's test set, Apache-2.0), at
   full size and centred on a black 640x480 canvas (larger images shrunk to fit, aspect kept),
   for zxing-cpp alone, pyzbar alone and the shipped pipeline (scanner.decode_frame): correct %,
   wrong % (some text, but not the expected one), median and p95 ms per image.
2. The cost of an idle 640x480 frame (no code in view, as most frames at a kiosk are): demo-scene
   frames of the empty room, and camera photos of the set with their code painted out.
3. Demo-scene sequences: frames from a badge entering the view (its code wholly inside the frame)
   to its first decode.

Times are per image, the median of three runs after a warm-up; on a shared machine they drift,
so compare the decoders within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.decode import QrDecoder  # noqa: E402
from scanner.demo import DemoScene, sample_payloads  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "qr-photos"
Decoder = Callable[[np.ndarray], list[str]]


def zxing_alone(image: np.ndarray) -> list[str]:
    barcodes = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain
    )
    return [b.text for b in barcodes]


def load_pyzbar() -> Decoder | None:
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError):
        return None

    def pyzbar_alone(image: np.ndarray) -> list[str]:
        symbols = pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
        return [s.data.decode("utf-8", errors="replace") for s in symbols]

    return pyzbar_alone


def on_canvas(image: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    h, w = image.shape
    scale = min(width / w, height / h, 1.0)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width), np.uint8)
    h, w = image.shape
    y, x = (height - h) // 2, (width - w) // 2
    canvas[y : y + h, x : x + w] = image
    return canvas


def timed(decoder: Decoder, image: np.ndarray, repeats: int) -> tuple[list[str], float]:
    times = []
    texts: list[str] = []
    for _ in range(repeats):
        start = time.perf_counter()
        texts = decoder(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return texts, statistics.median(times)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


@dataclass
class PhotoResult:
    correct: int
    wrong: list[str]
    wrong_ascii: list[str]
    times: list[float]
    total: int


def run_photos(
    decoder: Decoder, items: list[dict], images: list[np.ndarray], repeats: int
) -> PhotoResult:
    for image in images[:5]:  # warm-up: first calls load code and allocate
        decoder(image)
    correct = 0
    wrong: list[str] = []
    wrong_ascii: list[str] = []
    times = []
    for item, image in zip(items, images, strict=True):
        texts, ms = timed(decoder, image, repeats)
        times.append(ms)
        if item["expected"] in texts:
            correct += 1
        elif texts:
            wrong.append(item["image"])
            if item["expected"].isascii():
                wrong_ascii.append(item["image"])
    return PhotoResult(correct, wrong, wrong_ascii, times, len(items))


def photo_backgrounds(photos: Path, items: list[dict]) -> list[np.ndarray]:
    """Camera photos of the set with the code painted out, cropped to fill 640x480."""
    frames = []
    for item in items:
        if item["kind"] != "photo":
            continue
        grey = cv2.imread(str(photos / item["image"]), cv2.IMREAD_GRAYSCALE)
        located = zxingcpp.read_barcodes(grey, return_errors=True)
        if not located:
            continue
        mask = np.zeros_like(grey)
        for barcode in located:
            p = barcode.position
            corners = np.array(
                [
                    [p.top_left.x, p.top_left.y],
                    [p.top_right.x, p.top_right.y],
                    [p.bottom_right.x, p.bottom_right.y],
                    [p.bottom_left.x, p.bottom_left.y],
                ],
                dtype=np.float32,
            )
            centre = corners.mean(axis=0)
            grown = ((corners - centre) * 1.35 + centre).astype(np.int32)
            cv2.fillConvexPoly(mask, grown, 255)
        painted = cv2.inpaint(grey, mask, 5, cv2.INPAINT_TELEA)
        h, w = painted.shape
        scale = max(640 / w, 480 / h)
        big = cv2.resize(painted, (round(w * scale), round(h * scale)))
        y, x = (big.shape[0] - 480) // 2, (big.shape[1] - 640) // 2
        frame = np.ascontiguousarray(big[y : y + 480, x : x + 640])
        if not zxing_alone(frame):  # a second code elsewhere in the photo: not idle
            frames.append(frame)
    return frames


def demo_backgrounds(seeds: range, per_seed: int) -> list[np.ndarray]:
    frames = []
    for seed in seeds:
        scene = DemoScene(sample_payloads(4, seed=seed), seed=seed)
        index = 0
        taken = 0
        while taken < per_seed:
            frame = scene.frame(index)
            index += 1
            if frame.phase == "gap":
                frames.append(frame.image)
                taken += 1
    return frames


def idle_costs(decoder: Decoder, frames: list[np.ndarray], repeats: int) -> tuple[float, float]:
    for frame in frames[:5]:
        decoder(frame)
    times = [timed(decoder, frame, repeats)[1] for frame in frames]
    return statistics.median(times), p95(times)


@dataclass
class SequenceResult:
    frames_to_decode: list[int]
    never: int
    wrong: int
    appearances: int


def run_sequences(decoder: Decoder, seeds: range, appearances_per_seed: int) -> SequenceResult:
    frames_to_decode: list[int] = []
    never = 0
    wrong = 0
    total = 0
    for seed in seeds:
        scene = DemoScene(sample_payloads(6, seed=100 + seed), seed=100 + seed)
        index = 0
        current = -1
        in_view_frames = 0
        decoded_current = False
        done = 0
        while True:
            frame = scene.frame(index)
            index += 1
            if frame.appearance != current:
                if current >= 0:
                    total += 1
                    done += 1
                    if not decoded_current:
                        never += 1
                if done == appearances_per_seed:
                    break
                current = frame.appearance
                in_view_frames = 0
                decoded_current = False
            if frame.payload is None:
                continue
            texts = decoder(frame.image)
            wrong += sum(1 for t in texts if t != frame.payload)
            if frame.code_in_view and not decoded_current:
                in_view_frames += 1
            if not decoded_current and frame.payload in texts:
                decoded_current = True
                # Frames after the first one wholly in view (0: decoded on that very frame);
                # a decode from a partly visible code counts as 0 too.
                frames_to_decode.append(max(0, in_view_frames - 1))
    return SequenceResult(frames_to_decode, never, wrong, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sequences (CI)")
    args = parser.parse_args()

    repeats = 1 if args.quick else 3
    seq_seeds = range(4) if args.quick else range(12)
    per_seed = 6 if args.quick else 10

    pyzbar_alone = load_pyzbar()
    shipped = QrDecoder()
    decoders: dict[str, Decoder | None] = {
        "zxing-cpp alone": zxing_alone,
        "pyzbar alone": pyzbar_alone,
        "shipped pipeline": shipped.texts,
    }

    print("# bench/decode.py")
    print(
        f"python {platform.python_version()}, zxing-cpp {version('zxing-cpp')}, "
        f"pyzbar {'available' if pyzbar_alone else 'NOT available (libzbar0 missing?)'}, "
        f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}"
    )

    manifest_path = args.photos / "manifest.json"
    if not manifest_path.is_file():
        print(f"\n{manifest_path} not found: photo figures skipped (pass --photos)")
        items: list[dict] = []
    else:
        items = json.loads(manifest_path.read_text(encoding="utf-8"))["items"]
    if items:
        full = [cv2.imread(str(args.photos / i["image"]), cv2.IMREAD_GRAYSCALE) for i in items]
        canvas = [on_canvas(image) for image in full]
        print(f"\n## {len(items)} QR photos ({args.photos})")
        print(
            f"{'decoder':18} {'size':10} {'correct':>8} {'wrong':>7} {'wrong ASCII':>12} "
            f"{'median ms':>10} {'p95 ms':>8}"
        )
        wrong_lists = {}
        for name, decoder in decoders.items():
            if decoder is None:
                print(f"{name:18} (not available)")
                continue
            for label, images in (("full", full), ("640x480", canvas)):
                r = run_photos(decoder, items, images, repeats)
                print(
                    f"{name:18} {label:10} {100 * r.correct / r.total:7.1f}% "
                    f"{100 * len(r.wrong) / r.total:6.1f}% {len(r.wrong_ascii):12d} "
                    f"{statistics.median(r.times):10.2f} {p95(r.times):8.2f}"
                )
                wrong_lists[(name, label)] = r.wrong
        print("wrong texts (image: decoder/size):")
        by_image: dict[str, list[str]] = {}
        for (name, label), images in wrong_lists.items():
            for image in images:
                by_image.setdefault(image, []).append(f"{name}/{label}")
        for image, where in sorted(by_image.items()):
            print(f"  {image}: {', '.join(where)}")
        print(
            "  (qrcode-2/13.png is labelled '...photograph of...'; its code, a near copy of "
            "12.png, reads '...photography of...' with a valid checksum)"
        )

    print("\n## idle 640x480 frames (no code in view): ms per frame")
    idle_sets = {"demo room": demo_backgrounds(range(6), 10 if args.quick else 25)}
    if items:
        idle_sets["photo backgrounds"] = photo_backgrounds(args.photos, items)
    print(f"{'frames':30} {'decoder':18} {'median ms':>10} {'p95 ms':>8}")
    for set_name, frames in idle_sets.items():
        for name, decoder in decoders.items():
            if decoder is None:
                continue
            median, high = idle_costs(decoder, frames, repeats)
            print(f"{set_name + f' ({len(frames)})':30} {name:18} {median:10.2f} {high:8.2f}")

    print("\n## demo scene: frames from a badge wholly in view to its first decode")
    print(
        f"{'decoder':18} {'badges':>7} {'median':>7} {'p95':>5} {'max':>5} {'never':>6} "
        f"{'wrong':>6}"
    )
    for name in ("zxing-cpp alone", "shipped pipeline"):
        decoder = decoders[name]
        assert decoder is not None
        r = run_sequences(decoder, seq_seeds, per_seed)
        frames = r.frames_to_decode or [0]
        print(
            f"{name:18} {r.appearances:7d} {statistics.median(frames):7.1f} "
            f"{p95([float(f) for f in frames]):5.1f} {max(frames):5d} {r.never:6d} {r.wrong:6d}"
        )
    print(f"\nshipped pipeline stages used: {shipped.stats.by_stage}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
