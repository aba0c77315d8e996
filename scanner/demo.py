"""A synthetic camera scene: printed badges held up to the kiosk, one after another.

Used by the `demo` frame source, the tests and bench/decode.py. Every frame is a pure function of
(seed, frame index), so a sequence can be replayed exactly. Each badge enters from an edge, is held
still for a while (with a shaking hand), and leaves; between badges the camera sees an empty room.
What makes it hard is what a real kiosk camera sees: perspective tilt, in-plane rotation, motion
blur while the badge moves, defocus, sensor noise, glare on the laminate and light that changes.
"""

from __future__ import annotations

import base64
import bisect
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import qrcode
import qrcode.constants

# Frames per phase of one appearance (ranges, inclusive).
_GAP_FRAMES = (8, 20)
_ENTER_FRAMES = (6, 12)
_HOLD_FRAMES = (14, 26)
_LEAVE_FRAMES = (5, 10)
_NOISE_BANK = 4
_MODULE_PX = 4  # texture resolution of the printed code, before the perspective warp


def sample_payloads(count: int = 6, seed: int = 0) -> list[str]:
    """Badge-shaped payloads ("CB1" + 127 base32 characters), for a demo without real badges."""
    rng = np.random.default_rng(seed)
    payloads = []
    for _ in range(count):
        raw = rng.integers(0, 256, size=80, dtype=np.uint8).tobytes()
        payloads.append("CB1" + base64.b32encode(raw).decode("ascii").rstrip("=")[:127])
    return payloads


def qr_modules(payload: str) -> np.ndarray:
    """The code's modules (True = dark) at error correction M, with a 4-module quiet zone."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=4)
    code.add_data(payload)
    code.make(fit=True)
    return np.array(code.get_matrix(), dtype=bool)


@dataclass(frozen=True)
class SceneFrame:
    image: np.ndarray  # greyscale uint8, height x width
    payload: str | None  # the badge in view (partly or fully), None when the room is empty
    appearance: int  # index of the badge appearance this frame belongs to (gap frames included)
    code_quad: np.ndarray | None  # 4x2 float corners of the QR symbol (quiet zone excluded)
    code_in_view: bool  # every corner of the symbol lies inside the frame
    phase: str  # "gap", "enter", "hold" or "leave"


@dataclass(frozen=True)
class _Appearance:
    start: int  # first frame index (of the gap before the badge)
    gap: int
    enter: int
    hold: int
    leave: int
    payload: str
    code_px: float  # side of the symbol in the frame when held square-on
    entry: tuple[float, float]
    rest: tuple[float, float]
    exit: tuple[float, float]
    roll_deg: float
    tilt_x_deg: float
    tilt_y_deg: float
    defocus_sigma: float
    noise_sigma: float
    glare: tuple[float, float, float, float] | None  # (u, v, radius, strength) on the card
    gain: float
    holder: int = 0  # which of DEMO_CAST holds it, with `person`

    @property
    def length(self) -> int:
        return self.gap + self.enter + self.hold + self.leave


class DemoScene:
    """Badges from `payloads`, shown in turn and endlessly, on a synthetic room background."""

    def __init__(
        self,
        payloads: list[str],
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        person: bool = False,
    ) -> None:
        """`person`: someone (a drawn face the face check finds) walks up shortly before each
        badge and stands beside it while it is held up, for the photos of the demo."""
        if not payloads:
            raise ValueError("the demo scene needs at least one payload")
        self.payloads = list(payloads)
        self.person = person
        self.width = width
        self.height = height
        self.seed = seed
        self._background = _room_background(width, height, seed)
        noise_rng = np.random.default_rng([seed, 7])
        self._noise = [
            noise_rng.normal(0.0, 1.0, size=(height, width)).astype(np.float32)
            for _ in range(_NOISE_BANK)
        ]
        self._cards: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._appearances: list[_Appearance] = []
        self._starts: list[int] = []

    # Timeline -------------------------------------------------------------------------------

    def _appearance(self, index: int) -> _Appearance:
        while len(self._appearances) <= index:
            k = len(self._appearances)
            start = self._appearances[-1].start + self._appearances[-1].length if k else 0
            self._appearances.append(self._plan(k, start))
            self._starts.append(start)
        return self._appearances[index]

    def _locate(self, frame_index: int) -> _Appearance:
        while not self._appearances or (
            self._appearances[-1].start + self._appearances[-1].length <= frame_index
        ):
            self._appearance(len(self._appearances))
        return self._appearances[bisect.bisect_right(self._starts, frame_index) - 1]

    def _plan(self, k: int, start: int) -> _Appearance:
        rng = np.random.default_rng([self.seed, 1, k])
        w, h = self.width, self.height
        short = min(w, h)
        code_px = float(rng.uniform(0.22, 0.5) * short)
        rest = (float(rng.uniform(0.35, 0.65) * w), float(rng.uniform(0.35, 0.65) * h))

        def off_screen() -> tuple[float, float]:
            side = int(rng.integers(0, 4))
            along = float(rng.uniform(0.2, 0.8))
            reach = code_px * 1.2
            return [
                (along * w, -reach),
                (along * w, h + reach),
                (-reach, along * h),
                (w + reach, along * h),
            ][side]

        roll = float(rng.normal(0.0, 18.0))
        if rng.random() < 0.1:  # some hold their badge sideways or upside down
            roll += float(rng.choice([90.0, 180.0, 270.0]))
        glare = None
        if rng.random() < 0.35:
            glare = (
                float(rng.uniform(0.15, 0.85)),
                float(rng.uniform(0.1, 0.9)),
                float(rng.uniform(0.1, 0.3)),
                float(rng.uniform(60.0, 170.0)),
            )
        appearance = _Appearance(
            start=start,
            gap=int(rng.integers(_GAP_FRAMES[0], _GAP_FRAMES[1] + 1)),
            enter=int(rng.integers(_ENTER_FRAMES[0], _ENTER_FRAMES[1] + 1)),
            hold=int(rng.integers(_HOLD_FRAMES[0], _HOLD_FRAMES[1] + 1)),
            leave=int(rng.integers(_LEAVE_FRAMES[0], _LEAVE_FRAMES[1] + 1)),
            payload=self.payloads[k % len(self.payloads)],
            holder=k,
            code_px=code_px,
            entry=off_screen(),
            rest=rest,
            exit=off_screen(),
            roll_deg=roll,
            tilt_x_deg=float(rng.uniform(-30.0, 30.0)),
            tilt_y_deg=float(rng.uniform(-30.0, 30.0)),
            defocus_sigma=float(rng.uniform(0.0, 1.3)),
            noise_sigma=float(rng.uniform(1.5, 5.0)),
            glare=glare,
            gain=float(rng.uniform(0.55, 1.15)),
        )
        return self._keep_code_in_view(appearance)

    def _keep_code_in_view(self, app: _Appearance) -> _Appearance:
        """Move the resting place so the whole code is in the frame when the badge is held
        still (people aim their badge at the camera; only while moving is it cut off)."""
        _, quad = self._badge_geometry(app, app.rest, app.roll_deg)
        margin = 0.04 * min(self.width, self.height)
        dx = max(0.0, margin - float(quad[:, 0].min())) - max(
            0.0, float(quad[:, 0].max()) - (self.width - 1 - margin)
        )
        dy = max(0.0, margin - float(quad[:, 1].min())) - max(
            0.0, float(quad[:, 1].max()) - (self.height - 1 - margin)
        )
        if dx == 0 and dy == 0:
            return app
        return replace(app, rest=(app.rest[0] + dx, app.rest[1] + dy))

    def _badge_geometry(
        self, app: _Appearance, centre: tuple[float, float], roll_deg: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The card texture's homography into the frame, and where the code's corners land."""
        card, code_corners = self._card(app.payload)
        card_h, card_w = card.shape
        texture_corners = np.array(
            [[0, 0], [card_w, 0], [card_w, card_h], [0, card_h]], dtype=np.float32
        )
        symbol_side_tex = float(code_corners[1, 0] - code_corners[0, 0])
        frame_corners = _project(
            texture_corners - np.array([card_w / 2, card_h / 2], dtype=np.float32),
            app.code_px / symbol_side_tex,
            roll_deg,
            app.tilt_x_deg,
            app.tilt_y_deg,
            centre,
        )
        homography = cv2.getPerspectiveTransform(texture_corners, frame_corners)
        quad = cv2.perspectiveTransform(code_corners[None, :, :], homography)[0]
        return homography, quad

    # Rendering ------------------------------------------------------------------------------

    def frame(self, index: int) -> SceneFrame:
        app = self._locate(index)
        local = index - app.start
        rng = np.random.default_rng([self.seed, 2, index])
        light = self._light(index) * app.gain
        image = self._background.astype(np.float32) * light

        phase, centre, speed = self._pose(app, local)
        if self.person and (phase != "gap" or local >= app.gap // 2):
            self._draw_person(image, app, light)
        quad = None
        in_view = False
        payload = None
        if phase != "gap":
            payload = app.payload
            shake = rng.normal(0.0, 1.2, size=2) if phase == "hold" else np.zeros(2)
            centre = (centre[0] + float(shake[0]), centre[1] + float(shake[1]))
            roll = app.roll_deg + (float(rng.normal(0.0, 1.0)) if phase == "hold" else 0.0)
            quad = self._draw_badge(image, app, centre, roll, speed, light, rng)
            margin = 2.0
            in_view = bool(
                np.all(quad[:, 0] >= margin)
                and np.all(quad[:, 0] <= self.width - 1 - margin)
                and np.all(quad[:, 1] >= margin)
                and np.all(quad[:, 1] <= self.height - 1 - margin)
            )

        if app.defocus_sigma > 0.3:
            image = np.asarray(cv2.GaussianBlur(image, (0, 0), app.defocus_sigma), np.float32)
        noise = self._noise[index % _NOISE_BANK]
        shift = int(rng.integers(0, self.width))
        image += np.roll(noise, shift, axis=1) * app.noise_sigma
        out = np.clip(image, 0, 255).astype(np.uint8)
        return SceneFrame(out, payload, app.start, quad, in_view, phase)

    def _draw_person(self, image: np.ndarray, app: _Appearance, light: float) -> None:
        """The badge's holder: head and shoulders on the side of the room away from where the
        badge is held, so the badge hides neither."""
        w, h = self.width, self.height
        face_w = int(min(w, h) * 0.24)
        left_side = app.rest[0] > w / 2
        cx = int(w * (0.2 if left_side else 0.8))
        cy = int(h * 0.32)
        canvas = np.zeros((h, w), dtype=np.uint8)
        shoulders = (cx, cy + int(face_w * 1.5))
        axes = (int(face_w * 1.1), int(face_w * 0.8))
        cv2.ellipse(canvas, shoulders, axes, 0, 180, 360, 70, -1)
        draw_face(canvas, (cx, cy), face_w, variant=app.holder)
        person = canvas.astype(np.float32) * light
        # Nothing of a person is drawn black, so what is not zero is the person.
        np.copyto(image, person, where=canvas > 0)

    def _light(self, index: int) -> float:
        # Slow drift (clouds, doors opening) plus a faster flicker-free wobble.
        return 0.85 + 0.2 * math.sin(index / 97.0) + 0.05 * math.sin(index / 13.0)

    def _pose(
        self, app: _Appearance, local: int
    ) -> tuple[str, tuple[float, float], tuple[float, float]]:
        if local < app.gap:
            return "gap", app.rest, (0.0, 0.0)
        local -= app.gap
        if local < app.enter:
            return ("enter", *_glide(app.entry, app.rest, local, app.enter))
        local -= app.enter
        if local < app.hold:
            return "hold", app.rest, (0.0, 0.0)
        local -= app.hold
        return ("leave", *_glide(app.rest, app.exit, local + 1, app.leave))

    def _card(self, payload: str) -> tuple[np.ndarray, np.ndarray]:
        """The printed badge (float32 texture) and the symbol's corners in texture pixels."""
        if payload not in self._cards:
            modules = qr_modules(payload)
            n = modules.shape[0]
            code = np.where(modules, 25.0, 235.0).astype(np.float32)
            code = np.asarray(
                cv2.resize(code, (n * _MODULE_PX, n * _MODULE_PX), interpolation=cv2.INTER_NEAREST),
                np.float32,
            )
            side = code.shape[0]
            card_h = int(side * 1.55)
            card = np.full((card_h, side), 240.0, dtype=np.float32)
            card[:side, :] = code
            # A name line and a unit line under the code, as on the printed sheets.
            bar = side // 12
            card[side + bar : side + 2 * bar, side // 6 : side * 5 // 6] = 60.0
            card[side + 3 * bar : side + 3 * bar + bar // 2, side // 4 : side * 3 // 4] = 110.0
            quiet = 4 * _MODULE_PX
            corners = np.array(
                [
                    [quiet, quiet],
                    [side - quiet, quiet],
                    [side - quiet, side - quiet],
                    [quiet, side - quiet],
                ],
                dtype=np.float32,
            )
            self._cards[payload] = (card, corners)
        return self._cards[payload]

    def _draw_badge(
        self,
        image: np.ndarray,
        app: _Appearance,
        centre: tuple[float, float],
        roll_deg: float,
        speed: tuple[float, float],
        light: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        card, _ = self._card(app.payload)
        card_h, card_w = card.shape
        homography, quad = self._badge_geometry(app, centre, roll_deg)
        size = (self.width, self.height)
        # Lit card plus glare on the laminate; then composited over the room.
        lit = card * light
        if app.glare is not None:
            u, v, radius, strength = app.glare
            yy, xx = np.mgrid[0:card_h, 0:card_w].astype(np.float32)
            r = radius * card_w
            spot = np.exp(-((xx - u * card_w) ** 2 + (yy - v * card_h) ** 2) / (2 * r * r))
            lit = lit + spot * strength
        warped = cv2.warpPerspective(lit, homography, size, flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones_like(card), homography, size, flags=cv2.INTER_LINEAR)
        if abs(speed[0]) + abs(speed[1]) > 1.0:
            kernel = _motion_kernel(speed)
            warped = cv2.filter2D(warped, -1, kernel)
            mask = cv2.filter2D(mask, -1, kernel)
        image *= 1.0 - mask
        image += warped
        return quad


def _glide(
    start: tuple[float, float], end: tuple[float, float], step: int, steps: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Position along an eased path and the pixel velocity there."""

    def at(i: float) -> tuple[float, float]:
        t = min(max(i / steps, 0.0), 1.0)
        ease = t * t * (3 - 2 * t)
        return (start[0] + (end[0] - start[0]) * ease, start[1] + (end[1] - start[1]) * ease)

    here = at(step)
    before = at(step - 1)
    return here, (here[0] - before[0], here[1] - before[1])


def _project(
    points: np.ndarray,
    scale: float,
    roll_deg: float,
    tilt_x_deg: float,
    tilt_y_deg: float,
    centre: tuple[float, float],
) -> np.ndarray:
    """Corners of a flat card, rotated in 3D and seen through a pinhole, in frame pixels."""
    ax, ay, az = (math.radians(a) for a in (tilt_x_deg, tilt_y_deg, roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    xyz = np.column_stack([points * scale, np.zeros(len(points))]) @ (rx @ ry @ rz).T
    distance = 3.0 * float(np.abs(points).max() * scale)
    factor = distance / (distance + xyz[:, 2])
    projected = xyz[:, :2] * factor[:, None] + np.array(centre)
    return np.asarray(projected, np.float32)


def _motion_kernel(speed: tuple[float, float]) -> np.ndarray:
    length = max(3, round(math.hypot(*speed) * 0.5) | 1)
    kernel = np.zeros((length, length), dtype=np.float32)
    angle = math.atan2(speed[1], speed[0])
    c = length // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(
        kernel,
        (round(c - dx), round(c - dy)),
        (round(c + dx), round(c + dy)),
        1.0,
    )
    return np.asarray(kernel / kernel.sum(), np.float32)


def _room_background(width: int, height: int, seed: int) -> np.ndarray:
    """An empty assembly point: a lit wall, a door, posters with text, a floor."""
    rng = np.random.default_rng([seed, 0])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 150 + 40 * (xx / width) - 30 * (yy / height)
    room = wall.astype(np.float32)
    floor_y = int(height * rng.uniform(0.7, 0.85))
    room[floor_y:, :] = 90 + 20 * ((yy[floor_y:, :] - floor_y) / max(1, height - floor_y))
    door_x = int(rng.uniform(0.05, 0.7) * width)
    door_w = int(width * 0.18)
    room[int(height * 0.15) : floor_y, door_x : door_x + door_w] = float(rng.uniform(60, 110))
    canvas = np.clip(room, 0, 255).astype(np.uint8)
    for _ in range(3):
        px = int(rng.uniform(0, 0.8) * width)
        py = int(rng.uniform(0.05, 0.45) * height)
        pw = int(rng.uniform(0.1, 0.22) * width)
        ph = int(rng.uniform(0.12, 0.3) * height)
        canvas[py : py + ph, px : px + pw] = int(rng.uniform(170, 235))
        for line in range(1, 6):
            y = py + line * ph // 7
            if y + 6 < py + ph:
                cv2.putText(
                    canvas,
                    "NOTICE 0" + str(int(rng.integers(100, 999))),
                    (px + 4, y + 6),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.25, pw / 400),
                    int(rng.uniform(20, 80)),
                    1,
                    cv2.LINE_AA,
                )
    room = canvas.astype(np.float32)
    texture = rng.normal(0.0, 6.0, size=(height // 4 + 1, width // 4 + 1)).astype(np.float32)
    room += cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC)[:height, :width]
    return np.asarray(np.clip(room, 0, 255), np.uint8)


def draw_face(
    canvas: np.ndarray,
    centre: tuple[int, int],
    width: int,
    skin: int = 185,
    variant: int | None = None,
) -> None:
    """Draw a schematic face (hair, brows, eyes, nose, mouth) `width` pixels across, centred on
    `centre`, onto a greyscale `canvas` in place. Drawn so that OpenCV's frontal-face Haar
    cascade finds it (checked from 80 px across in a 640x480 frame): the demo's person and the
    face check's tests use it. `variant` draws one of DEMO_CAST instead (another skin, hair,
    eyes, mouth, glasses, beard), so that a queue of drawn people does not look like one person
    showing many badges (kiosk/holders.py); None is the one face the tests know."""
    cx, cy = centre
    s = width
    look = _Look.of(variant, skin)

    def px(f: float) -> int:
        return max(1, int(f * s))

    hair = look.hair_tone
    if look.hair == "long":
        cv2.ellipse(canvas, (cx, cy + px(0.05)), (px(0.66), px(0.85)), 0, 0, 360, hair, -1)
    else:
        cv2.ellipse(canvas, (cx, cy - px(0.12)), (px(0.62), px(0.78)), 0, 0, 360, hair, -1)
    cv2.ellipse(canvas, (cx, cy), (px(look.face_w), px(0.66)), 0, 0, 360, look.skin, -1)
    if look.hair != "bald":
        top = 0.22 if look.hair != "fringe" else 0.32
        cv2.ellipse(canvas, (cx, cy - px(0.55)), (px(0.52), px(top)), 0, 0, 360, hair, -1)
    if look.beard:
        cv2.ellipse(canvas, (cx, cy + px(0.42)), (px(0.36), px(0.22)), 0, 0, 180, hair + 15, -1)
    for side in (-1, 1):
        eye = (cx + side * px(look.eye_gap), cy - px(0.08))
        cv2.ellipse(canvas, (eye[0], cy - px(0.2)), (px(0.13), px(0.035)), 0, 0, 360, 60, -1)
        cv2.ellipse(canvas, eye, (px(0.12), px(look.eye_h)), 0, 0, 360, 110, -1)
        cv2.ellipse(canvas, eye, (px(0.07), px(0.04)), 0, 0, 360, 40, -1)
        if look.glasses:
            cv2.rectangle(
                canvas,
                (eye[0] - px(0.16), eye[1] - px(0.1)),
                (eye[0] + px(0.16), eye[1] + px(0.1)),
                30,
                max(1, px(0.025)),
            )
        cv2.circle(canvas, (cx + side * px(0.05), cy + px(0.2)), px(0.025), 90, -1)
    cv2.ellipse(
        canvas,
        (cx, cy + px(0.08)),
        (px(0.05), px(0.14)),
        0,
        0,
        360,
        min(255, look.skin + 30),
        -1,
    )
    cv2.ellipse(canvas, (cx, cy + px(0.36)), (px(look.mouth_w), px(0.045)), 0, 0, 360, 70, -1)


@dataclass(frozen=True)
class _Look:
    """What makes one drawn person look unlike the next."""

    skin: int = 185
    hair: str = "short"  # short, long, fringe, bald
    hair_tone: int = 45
    face_w: float = 0.5
    eye_gap: float = 0.2
    eye_h: float = 0.07
    mouth_w: float = 0.16
    glasses: bool = False
    beard: bool = False

    @classmethod
    def of(cls, variant: int | None, skin: int) -> _Look:
        if variant is None:
            return cls(skin=skin)
        return DEMO_CAST[variant % len(DEMO_CAST)]


# The demo's queue: people unlike each other by the measure the kiosk uses to tell one person
# showing several badges (kiosk/holders.py; tests/photos/test_several_badges.py checks every
# pair), so the demo flags nobody.
DEMO_CAST = (
    _Look(skin=199, hair="short", hair_tone=73, face_w=0.53, eye_gap=0.17, eye_h=0.079),
    _Look(
        skin=150, hair="fringe", hair_tone=25, face_w=0.45, eye_gap=0.22, mouth_w=0.2, glasses=True
    ),
    _Look(
        skin=180,
        hair="bald",
        hair_tone=62,
        face_w=0.49,
        eye_gap=0.19,
        eye_h=0.068,
        mouth_w=0.175,
        beard=True,
    ),
    _Look(
        skin=155,
        hair="bald",
        hair_tone=75,
        face_w=0.53,
        eye_gap=0.18,
        eye_h=0.056,
        mouth_w=0.14,
        glasses=True,
    ),
    _Look(
        skin=161,
        hair="long",
        hair_tone=64,
        face_w=0.51,
        eye_gap=0.21,
        eye_h=0.069,
        mouth_w=0.10,
        glasses=True,
        beard=True,
    ),
)
