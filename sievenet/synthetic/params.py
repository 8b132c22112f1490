"""Scene parameters: every random choice the studio makes, drawn without rendering anything.

A scene is a person (body, pose, hair, lower garment, backdrop) wearing an upper garment. Persons and
garments come from independent seed streams keyed by (split, seed, index), so sample i is a pure function
of those and train/test never share a person or a garment. Drawing is cheap (no pixels), which lets the
hard-case statistics be measured over thousands of scenes in milliseconds.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "test")

# Ten skin tones (RGB), light to deep; each scene jitters its tone slightly.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (250, 222, 200),
    (241, 204, 178),
    (232, 190, 158),
    (222, 172, 135),
    (205, 150, 112),
    (184, 128, 92),
    (160, 106, 74),
    (134, 86, 58),
    (105, 66, 44),
    (78, 50, 36),
)
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (25, 20, 18),
    (60, 40, 28),
    (100, 66, 40),
    (150, 104, 60),
    (205, 170, 110),
    (140, 50, 30),
    (170, 170, 170),
)

# Pose of one arm: (name, probability). "crossing" puts the forearm in front of the torso.
ARM_POSES = ("down", "out", "raised", "akimbo", "crossing")
ARM_POSE_P = (0.46, 0.16, 0.12, 0.14, 0.12)
HAIR_STYLES = ("short", "bob", "long")
HAIR_STYLE_P = (0.30, 0.25, 0.45)

SLEEVES = ("short", "long", "sleeveless")
SLEEVE_P = (0.38, 0.34, 0.28)
NECKLINES = ("round", "v")
FITS = ("tight", "loose")
TEXTURES = ("solid", "stripes", "checks", "dots", "gradient", "noise", "photo", "print")
TEXTURE_P = (0.09, 0.20, 0.12, 0.10, 0.06, 0.07, 0.08, 0.28)
LOWERS = ("trousers", "shorts", "skirt")
LOWER_P = (0.55, 0.2, 0.25)
PRINT_WORDS = (
    "SIEVE", "NEW YORK", "1987", "OCEAN", "PARIS", "HELLO", "TOKYO", "LOVE", "GO!", "WILD",
    "BERLIN", "SURF", "NO. 9", "STUDIO", "ROME", "CHILL",
)  # fmt: skip
LOGOS = ("circle", "star", "triangle", "ring", "heart", "skimage")


@dataclass(frozen=True)
class Arm:
    """One arm: pose name, upper-arm angle from straight down (+ = away from the body) and elbow bend."""

    pose: str
    shoulder_deg: float
    elbow_deg: float  # forearm angle relative to the upper arm; negative bends it towards the body midline


@dataclass(frozen=True)
class PersonParams:
    """Everything about a scene except the upper garment. Lengths are in units of body height."""

    person_id: str
    skin_tone: int
    skin_rgb: tuple[int, int, int]
    head: float  # head height
    shoulder: float  # half shoulder width
    waist: float  # half waist width
    hip: float  # half hip width
    neck_len: float
    upper_arm: float
    forearm: float
    arm_width: float  # half width of the upper arm
    leg_len: float
    scale: float  # body height in image heights; > 1 crops the legs like a catalogue shot
    top: float  # head top, in image heights
    centre: float  # body centre x offset, in image widths (0 = centred)
    lean_deg: float
    right_arm: Arm  # the person's right arm (image left)
    left_arm: Arm  # the person's left arm (image right)
    cross_order: int  # which forearm is in front when both cross (0 right, 1 left)
    stance: float  # feet apart, half distance in body units
    hair: str
    hair_rgb: tuple[int, int, int]
    hair_front: bool  # long hair falling in front of the shoulders over the garment
    lower: str
    lower_rgb: tuple[int, int, int]
    lower_pattern: str  # "solid", "denim" or "pinstripe"
    shoe_rgb: tuple[int, int, int]
    lip_rgb: tuple[int, int, int]
    eye_rgb: tuple[int, int, int]
    backdrop_rgb: tuple[int, int, int]
    backdrop_gradient: float
    light_x: float  # horizontal light direction for shading, -1..1

    @property
    def arms_crossing(self) -> bool:
        return "crossing" in (self.right_arm.pose, self.left_arm.pose)

    @property
    def hair_over_garment(self) -> bool:
        return self.hair == "long" and self.hair_front


@dataclass(frozen=True)
class GarmentParams:
    """The upper garment, independent of who wears it."""

    garment_id: str
    sleeve: str
    neckline: str
    fit: str
    length: float  # hem below the hips, in body units
    texture: str
    base_rgb: tuple[int, int, int]
    accent_rgb: tuple[int, int, int]
    texture_seed: int
    stripe_dir: str  # horizontal / vertical / diagonal (stripes only)
    period: float  # pattern period in garment widths
    photo: int  # index into the photo sources (photo only)
    print_base: str  # texture family under a print
    print_word: str
    logo: str
    print_rgb: tuple[int, int, int]

    @property
    def garment_type(self) -> str:
        return {"short": "t-shirt", "long": "long-sleeve", "sleeveless": "tank-top"}[self.sleeve]

    @property
    def has_print(self) -> bool:
        return self.texture == "print"


def _rng(split: str, seed: int, index: int, stream: str) -> np.random.Generator:
    """Independent generator per (split, seed, index, stream); split and stream are hashed into the entropy."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    tag = zlib.crc32(f"sievenet-studio/{split}/{stream}".encode())
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([tag, int(seed), int(index)])))


def _rgb(rng: np.random.Generator, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=3))


def _pick(rng: np.random.Generator, options: tuple, p: tuple | None = None):
    return options[int(rng.choice(len(options), p=p))]


# Colours that read as fabric: saturated hues and neutrals, drawn in HSV so pastels and darks both occur.
def _fabric_rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    import colorsys

    if rng.random() < 0.2:  # neutral: white, grey, black, beige
        v = float(rng.choice([0.12, 0.3, 0.55, 0.8, 0.95]))
        s = float(rng.uniform(0.0, 0.15))
        h = float(rng.uniform(0.05, 0.15))
    else:
        h, s, v = float(rng.random()), float(rng.uniform(0.35, 0.95)), float(rng.uniform(0.35, 0.95))
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def _arm(rng: np.random.Generator) -> Arm:
    pose = _pick(rng, ARM_POSES, ARM_POSE_P)
    u = rng.uniform
    if pose == "down":
        return Arm(pose, float(u(4, 16)), float(u(-15, 5)))
    if pose == "out":
        return Arm(pose, float(u(20, 45)), float(u(-30, 20)))
    if pose == "raised":
        return Arm(pose, float(u(60, 150)), float(u(-60, 30)))
    if pose == "akimbo":
        return Arm(pose, float(u(35, 50)), float(u(-125, -105)))
    return Arm(pose, float(u(-4, 10)), float(u(-135, -95)))  # crossing: forearm across the waist


def draw_person(split: str, seed: int, index: int) -> PersonParams:
    """Draw person `index` of `split` (pure function of its arguments)."""
    rng = _rng(split, seed, index, "person")
    u = rng.uniform
    tone = int(rng.integers(len(SKIN_TONES)))
    skin = tuple(int(np.clip(c + rng.integers(-8, 9), 0, 255)) for c in SKIN_TONES[tone])
    shoulder = float(u(0.105, 0.13))
    hair = _pick(rng, HAIR_STYLES, HAIR_STYLE_P)
    # Lower garments get muted catalogue colours: denim, black, khaki, grey, plus some fabric colours.
    lower_rgb = _pick(
        rng, ((52, 72, 110), (30, 30, 34), (190, 170, 130), (120, 120, 125), (235, 232, 225), (80, 60, 45))
    )
    if rng.random() < 0.3:
        lower_rgb = _fabric_rgb(rng)
    backdrop = int(u(232, 252))
    return PersonParams(
        person_id=f"{split}-p{seed}-{index}",
        skin_tone=tone,
        skin_rgb=skin,
        head=float(u(0.118, 0.138)),
        shoulder=shoulder,
        waist=float(u(0.072, 0.095)),
        hip=float(u(0.085, 0.105)),
        neck_len=float(u(0.03, 0.045)),
        upper_arm=float(u(0.16, 0.18)),
        forearm=float(u(0.14, 0.155)),
        arm_width=float(u(0.022, 0.03)),
        leg_len=float(u(0.44, 0.48)),
        scale=float(u(1.05, 1.6)),
        top=float(u(0.02, 0.07)),
        centre=float(u(-0.05, 0.05)),
        lean_deg=float(u(-4, 4)),
        right_arm=_arm(rng),
        left_arm=_arm(rng),
        cross_order=int(rng.integers(2)),
        stance=float(u(0.03, 0.09)),
        hair=hair,
        hair_rgb=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        hair_front=bool(rng.random() < 0.62),
        lower=_pick(rng, LOWERS, LOWER_P),
        lower_rgb=lower_rgb,
        lower_pattern=_pick(rng, ("solid", "denim", "pinstripe"), (0.6, 0.3, 0.1)),
        shoe_rgb=_pick(rng, ((20, 20, 20), (240, 240, 240), (120, 70, 40), (200, 30, 40))),
        lip_rgb=tuple(int(c * float(u(0.75, 0.9))) for c in (210, 110, 110)),
        eye_rgb=_pick(rng, ((40, 30, 25), (70, 110, 160), (60, 120, 80), (90, 60, 35))),
        backdrop_rgb=(backdrop, backdrop - int(rng.integers(0, 5)), backdrop - int(rng.integers(0, 9))),
        backdrop_gradient=float(u(0.02, 0.08)),
        light_x=float(u(-1, 1)),
    )


def draw_garment(split: str, seed: int, index: int) -> GarmentParams:
    """Draw garment `index` of `split` (pure function of its arguments)."""
    rng = _rng(split, seed, index, "garment")
    u = rng.uniform
    texture = _pick(rng, TEXTURES, TEXTURE_P)
    base = _fabric_rgb(rng)
    accent = _fabric_rgb(rng)
    # Keep pattern colours apart so stripes and checks are visible (a warp error must show).
    if sum(abs(a - b) for a, b in zip(base, accent, strict=True)) < 120:
        accent = tuple(255 - c for c in base)
    return GarmentParams(
        garment_id=f"{split}-g{seed}-{index}",
        sleeve=_pick(rng, SLEEVES, SLEEVE_P),
        neckline=_pick(rng, NECKLINES, (0.6, 0.4)),
        fit=_pick(rng, FITS),
        length=float(u(0.0, 0.07)),
        texture=texture,
        base_rgb=base,
        accent_rgb=accent,
        texture_seed=int(rng.integers(2**31)),
        stripe_dir=_pick(rng, ("horizontal", "vertical", "diagonal"), (0.45, 0.3, 0.25)),
        period=float(u(0.06, 0.2)),
        photo=int(rng.integers(1 << 16)),
        print_base=_pick(rng, ("solid", "solid", "stripes", "gradient")),
        print_word=_pick(rng, PRINT_WORDS),
        logo=_pick(rng, LOGOS),
        print_rgb=_fabric_rgb(rng),
    )


def unpaired_partner(index: int) -> int:
    """The garment index person `index` tries on in unpaired mode: its neighbour (0<->1, 2<->3, ...)."""
    return index ^ 1


def describe(person: PersonParams, garment: GarmentParams) -> dict:
    """The metadata dict of a scene: stable keys other parts filter and group by."""
    return {
        "person_id": person.person_id,
        "garment_id": garment.garment_id,
        "garment_type": garment.garment_type,
        "sleeve": garment.sleeve,
        "neckline": garment.neckline,
        "fit": garment.fit,
        "texture": garment.texture,
        "text_print": garment.has_print,
        "arms_crossing": person.arms_crossing,
        "hair_over_garment": person.hair_over_garment,
        "hair": person.hair,
        "skin_tone": person.skin_tone,
        "lower": person.lower,
        "arm_poses": [person.right_arm.pose, person.left_arm.pose],
    }


def as_dict(params: PersonParams | GarmentParams) -> dict:
    """All drawn values as plain JSON-ready types (for the per-sample metadata file)."""
    return dataclasses.asdict(params)


# ---- The 3D studio's person: a parametric body, its pose, and the photograph around it -------------------

# Whole-body poses with the frequencies people's photos have: mostly arms down or slightly out, every hard
# case a clear minority (the 2D studio's 23 % crossed arms taught the model to expect an arm on the chest).
POSES_3D = ("down", "out", "mixed", "raised", "akimbo", "crossed", "front")
POSE_3D_P = (0.40, 0.20, 0.12, 0.06, 0.08, 0.06, 0.08)
FRAMINGS = ("full", "knee", "waist", "selfie")
FRAMING_P = (0.3, 0.3, 0.28, 0.12)
BACKGROUNDS = ("studio", "photo", "pattern")
BACKGROUND_P = (0.5, 0.32, 0.18)
LOWERS_3D = ("trousers", "shorts")


@dataclass(frozen=True)
class Arm3D:
    """One arm in the 3D studio, in degrees: abduction (out from the side), flexion (forward), elbow bend."""

    pose: str
    abduct: float
    flex: float
    elbow: float  # 0 = straight; bends the forearm forward and inward
    twist: float  # forearm direction inward (+) across the body, for crossed and in-front poses


@dataclass(frozen=True)
class Person3DParams:
    """Everything about a 3D scene except the upper garment: body, pose, hair, lower garment, camera, light,
    background and photographic degradations."""

    person_id: str
    phenotype: tuple[tuple[str, float], ...]  # anny phenotype sliders, each in [0, 1]
    female: bool
    skin_tone: int
    skin_rgb: tuple[int, int, int]
    pose: str
    right_arm: Arm3D
    left_arm: Arm3D
    yaw_deg: float  # whole-body turn about the vertical axis
    lean_deg: float  # sideways lean of the torso
    pitch_deg: float  # forward / backward lean
    head_yaw_deg: float
    hair: str
    hair_rgb: tuple[int, int, int]
    hair_front: bool
    lower: str
    lower_rgb: tuple[int, int, int]
    shoe_rgb: tuple[int, int, int]
    lip_rgb: tuple[int, int, int]
    framing: str
    fov_deg: float
    cam_dx: float  # camera offsets in fractions of the framed height
    cam_dz: float
    key_azimuth: float  # degrees, 0 = from the camera, + = from the image right
    key_elevation: float
    key_intensity: float
    fill_intensity: float
    ambient: float
    kelvin: float  # colour temperature of the key light
    background: str
    background_rgb: tuple[int, int, int]
    background_index: int  # photo / pattern choice and crop
    noise: float  # sensor noise sigma in [0, 1] units
    blur: float  # Gaussian blur sigma in pixels at 256 px height
    jpeg: int  # JPEG quality, 0 = none
    white_balance: tuple[float, float, float]

    @property
    def arms_crossing(self) -> bool:
        return self.pose == "crossed"

    @property
    def hair_over_garment(self) -> bool:
        return self.hair == "long" and self.hair_front


def _arm3d(rng: np.random.Generator, pose: str) -> Arm3D:
    u = rng.uniform
    if pose == "down":
        return Arm3D(pose, float(u(4, 12)), float(u(-5, 10)), float(u(0, 15)), 0.0)
    if pose == "out":
        return Arm3D(pose, float(u(15, 35)), float(u(-5, 15)), float(u(0, 30)), 0.0)
    if pose == "raised":
        return Arm3D(pose, float(u(80, 150)), float(u(0, 30)), float(u(0, 60)), 0.0)
    if pose == "akimbo":  # elbows out and a little back, forearms turned in to the hips
        return Arm3D(pose, float(u(40, 55)), float(u(-20, -5)), float(u(95, 115)), float(u(80, 95)))
    if pose == "crossed":
        return Arm3D(pose, float(u(6, 14)), float(u(15, 30)), float(u(95, 120)), float(u(70, 85)))
    # "front": hands together in front of the belly, elbows bent forward
    return Arm3D(pose, float(u(5, 12)), float(u(10, 30)), float(u(55, 80)), float(u(35, 55)))


def draw_person3d(split: str, seed: int, index: int) -> Person3DParams:
    """Draw 3D person `index` of `split` (pure function of its arguments, its own seed stream)."""
    rng = _rng(split, seed, index, "person3d")
    u = rng.uniform
    female = bool(rng.random() < 0.5)
    ancestry = rng.dirichlet((0.6, 0.6, 0.6))
    phenotype = (
        ("gender", float(u(0.0, 0.12) if female else u(0.88, 1.0))),
        ("age", float(u(0.5, 0.85))),
        ("muscle", float(u(0.25, 0.8))),
        ("weight", float(u(0.2, 0.8))),
        ("height", float(u(0.25, 0.8))),
        ("proportions", float(u(0.3, 0.8))),
        ("cupsize", float(u(0.3, 0.75))),
        ("firmness", float(u(0.35, 0.75))),
        ("african", float(ancestry[0])),
        ("asian", float(ancestry[1])),
        ("caucasian", float(ancestry[2])),
    )
    tone = int(rng.integers(len(SKIN_TONES)))
    skin = tuple(int(np.clip(c + rng.integers(-8, 9), 0, 255)) for c in SKIN_TONES[tone])
    pose = _pick(rng, POSES_3D, POSE_3D_P)
    if pose == "mixed":  # one arm down, the other out, akimbo or raised
        other = _pick(rng, ("out", "akimbo", "raised"), (0.6, 0.25, 0.15))
        arms = [_arm3d(rng, "down"), _arm3d(rng, other)]
        if rng.random() < 0.5:
            arms.reverse()
    else:
        arms = [_arm3d(rng, pose), _arm3d(rng, pose)]
    hair = _pick(rng, HAIR_STYLES, (0.3, 0.3, 0.4) if female else (0.8, 0.15, 0.05))
    lower_rgb = _pick(
        rng, ((52, 72, 110), (30, 30, 34), (190, 170, 130), (120, 120, 125), (235, 232, 225), (80, 60, 45))
    )
    if rng.random() < 0.25:
        lower_rgb = _fabric_rgb(rng)
    grey = int(u(200, 250))
    kelvin = float(np.clip(rng.normal(5600, 900), 3200, 8000))
    return Person3DParams(
        person_id=f"{split}-q{seed}-{index}",
        phenotype=phenotype,
        female=female,
        skin_tone=tone,
        skin_rgb=skin,
        pose=pose,
        right_arm=arms[0],
        left_arm=arms[1],
        yaw_deg=float(np.clip(rng.normal(0, 11), -25, 25)),
        lean_deg=float(u(-4, 4)),
        pitch_deg=float(u(-3, 4)),
        head_yaw_deg=float(u(-12, 12)),
        hair=hair,
        hair_rgb=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        hair_front=bool(rng.random() < 0.6),
        lower=_pick(rng, LOWERS_3D, (0.78, 0.22)),
        lower_rgb=lower_rgb,
        shoe_rgb=_pick(rng, ((20, 20, 20), (240, 240, 240), (120, 70, 40), (200, 30, 40))),
        lip_rgb=tuple(int(c * float(u(0.7, 0.9))) for c in (200, 105, 105)),
        framing=_pick(rng, FRAMINGS, FRAMING_P),
        fov_deg=float(u(18, 40)),
        cam_dx=float(u(-0.06, 0.06)),
        cam_dz=float(u(-0.04, 0.04)),
        key_azimuth=float(u(-70, 70)),
        key_elevation=float(u(10, 55)),
        key_intensity=float(u(0.55, 0.9)),
        fill_intensity=float(u(0.1, 0.3)),
        ambient=float(u(0.25, 0.45)),
        kelvin=kelvin,
        background=_pick(rng, BACKGROUNDS, BACKGROUND_P),
        background_rgb=(grey, grey - int(rng.integers(0, 6)), grey - int(rng.integers(0, 12))),
        background_index=int(rng.integers(1 << 16)),
        noise=float(u(0.0, 0.025)),
        blur=float(u(0.0, 0.9)),
        jpeg=int(rng.integers(55, 96)) if rng.random() < 0.5 else 0,
        white_balance=tuple(float(v) for v in rng.normal(1.0, 0.04, size=3)),
    )


def describe3d(person: Person3DParams, garment: GarmentParams) -> dict:
    """The metadata dict of a 3D scene: the 2D studio's keys plus the 3D studio's own."""
    return {
        "person_id": person.person_id,
        "garment_id": garment.garment_id,
        "garment_type": garment.garment_type,
        "sleeve": garment.sleeve,
        "neckline": garment.neckline,
        "fit": garment.fit,
        "texture": garment.texture,
        "text_print": garment.has_print,
        "arms_crossing": person.arms_crossing,
        "hair_over_garment": person.hair_over_garment,
        "hair": person.hair,
        "skin_tone": person.skin_tone,
        "lower": person.lower,
        "arm_poses": [person.right_arm.pose, person.left_arm.pose],
        "studio": "3d",
        "pose": person.pose,
        "framing": person.framing,
        "background": person.background,
        "yaw_deg": round(person.yaw_deg, 2),
        "female": person.female,
    }
