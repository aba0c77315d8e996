"""Frames for the scanner tests: badges rendered as a camera would see them, and empty scenes."""

from __future__ import annotations

import cv2
import numpy as np

from scanner.demo import qr_modules, sample_payloads

BADGE_A, BADGE_B = sample_payloads(2, seed=42)


def badge_frame(
    payload: str,
    *,
    module_px: int = 4,
    size: tuple[int, int] = (640, 480),
    angle_deg: float = 0.0,
    inverted: bool = False,
) -> np.ndarray:
    """A 640x480 greyscale frame: a printed code on a mid-grey background, optionally rotated."""
    width, height = size
    modules = qr_modules(payload)
    dark, light = (225, 30) if inverted else (30, 225)
    code = np.where(modules, dark, light).astype(np.uint8)
    code = cv2.resize(code, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    frame = np.full((height, width), 120, np.uint8)
    y = (height - code.shape[0]) // 2
    x = (width - code.shape[1]) // 2
    frame[y : y + code.shape[0], x : x + code.shape[1]] = code
    if angle_deg:
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle_deg, 1.0)
        frame = cv2.warpAffine(frame, turn, (width, height), borderValue=120)
    return frame


def empty_frame(level: int = 120, seed: int = 0, noise: float = 3.0) -> np.ndarray:
    """A scene with no code: a gradient wall with sensor noise (so no two frames are equal)."""
    rng = np.random.default_rng(seed)
    wall = np.linspace(level - 20, level + 20, 640, dtype=np.float32)[None, :].repeat(480, 0)
    wall += rng.normal(0, noise, wall.shape).astype(np.float32)
    return np.clip(wall, 0, 255).astype(np.uint8)
