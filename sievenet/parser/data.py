"""The parser's training data: studio scenes rendered ahead to disk, framed and degraded like real photos.

Rendering (the slow part, ~0.2 s a 3D scene on one core) happens once, into shards of plain .npy files:

    shard_0000/image.npy   (N, H, W, 3) uint8   the scene, over a photographic or procedural backdrop
               label.npy   (N, H, W) uint8      the 8 model classes (DESIGN §3)
               kp.npy      (N, 18, 3) float32   the studio's exact COCO-18 keypoints
               mp_kp.npy   (N, 18, 3) float32   what mediapipe found on the image (zeros: nobody found)
               mp_mask.npy (N, H, W) uint8      mediapipe's person mask, 0..255, as the pipeline selects it

mediapipe runs at render time so the parser trains on the mask and keypoints the pipeline will hand it, not
only on perfect ones. Training draws every batch from (seed, step): each sample is cut the way the pipeline
cuts a photo (a full body or a photo ending anywhere from the waist to the knees, then `person_box` and
`crop`), then mirrored, lit, blurred, noised and JPEG-compressed at random.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from sievenet.labels import Label, lip_to_label
from sievenet.parser.model import FLIP_PAIRS, ParserConfig, encode
from sievenet.preprocess.framing import crop, keypoints_to_crop, person_box
from sievenet.preprocess.pose import visible

# Background photos (skimage's offline samples without people), split so test scenes use photos never seen in
# training. The 3D studio's own "photo" backdrops are drawn from skimage too; in training they are replaced.
TRAIN_PHOTOS = ("brick", "grass", "chelsea", "hubble_deep_field", "immunohistochemistry", "retina", "moon",
                "coins", "clock", "page", "text", "cell")  # fmt: skip
TEST_PHOTOS = ("rocket", "coffee", "gravel")
SHARD = 100
FILES = ("image", "label", "kp", "mp_kp", "mp_mask")


@functools.cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3].astype(np.float32) / 255.0


def background(rng: np.random.Generator, height: int, width: int, photos: tuple[str, ...]) -> np.ndarray:
    """(H, W, 3) float32 backdrop in [0, 1]: a random crop of a photo (tinted if grey) or a procedural texture."""
    if rng.random() < 0.7:
        src = _photo(photos[int(rng.integers(len(photos)))])
        sh, sw = src.shape[:2]
        ch = int(min(sh, sw * height / width) * rng.uniform(0.35, 1.0))
        cw = min(sw, int(ch * width / height))
        y0, x0 = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
        out = cv2.resize(np.ascontiguousarray(src[y0 : y0 + ch, x0 : x0 + cw]), (width, height))
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if np.ptp(src[..., 0] - src[..., 1]) < 1e-3:  # a grey photo: give it a colour cast
            out = out * rng.uniform(0.5, 1.1, size=3).astype(np.float32)
    else:
        kind = int(rng.integers(3))
        base = rng.uniform(0.1, 0.95, size=3).astype(np.float32)
        other = rng.uniform(0.1, 0.95, size=3).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / height
        if kind == 0:  # soft blotches
            small = rng.random((int(rng.integers(3, 12)), int(rng.integers(3, 10)))).astype(np.float32)
            t = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        elif kind == 1:  # stripes at an angle
            a = rng.uniform(0, np.pi)
            t = ((np.cos(a) * xx + np.sin(a) * yy) * rng.uniform(4, 20) % 1.0 < 0.5).astype(np.float32)
        else:  # a gradient with a horizon
            t = np.clip(yy / max(height / width, 1e-3) * rng.uniform(0.5, 1.5), 0, 1)
        t = np.clip(t, 0, 1)[..., None]
        out = base * (1 - t) + other * t
    sigma = rng.uniform(0, 2.5) * height / 256  # depth of field
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return np.clip(out, 0, 1).astype(np.float32)


@contextlib.contextmanager
def _backdrop(studio: str, image: np.ndarray | None):
    """Paint `image` (or leave the studio's own backdrop when None) behind the next render of `studio`."""
    if image is None:
        yield
        return
    if studio == "2d":
        from sievenet.synthetic import render as module

        name = "_backdrop"

        def replacement(c, p):
            c.img[:] = image
    else:
        from sievenet.synthetic.studio3d import scene as module

        name = "_background"

        def replacement(p, height, width):
            return image

    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def render_scene(
    ds, index: int, *, seed: int, photos: tuple[str, ...] = TRAIN_PHOTOS, keep_own_backdrop: float = 0.3
) -> dict[str, np.ndarray]:
    """Scene `index` of a SyntheticTryOn `ds` (its person in its own garment) over a drawn backdrop.

    Returns a sample dict with image, label (model classes), kp (the studio's keypoints) and empty mediapipe
    fields (mp_kp all zero: "not looked at").
    """
    h, w = ds.size
    spec = ds.spec(index)
    studio = spec.studio
    rng = np.random.default_rng([seed, index, 3 if studio == "3d" else 2, 7])
    own = rng.random() < keep_own_backdrop and getattr(spec.person, "background", "") != "photo"
    backdrop = None if own else background(rng, h, w, photos)
    with _backdrop(studio, backdrop):
        if studio == "3d":
            from sievenet.synthetic.studio3d import render_pair

            scene, _ = render_pair(spec.person, spec.worn, None, h, w)
        else:
            from sievenet.synthetic.render import render_scene as render_2d

            scene = render_2d(spec.person, spec.worn, h, w)
    return {
        "image": scene.image,
        "label": lip_to_label(scene.lip).astype(np.uint8),
        "kp": np.asarray(scene.keypoints, np.float32),
        "mp_kp": np.zeros((18, 3), np.float32),
        "mp_mask": np.zeros((h, w), np.uint8),
    }


def render_shards(
    out: str | os.PathLike,
    *,
    studio: str,
    n: int,
    split: str = "train",
    seed: int = 0,
    size: tuple[int, int] = (384, 288),
    photos: tuple[str, ...] = TRAIN_PHOTOS,
    keep_own_backdrop: float = 0.3,
    log=print,
) -> Path:
    """Render n scenes of one studio into shards under `out`; finished shards are kept (resume by re-running).

    Args:
        studio: "2d" or "3d".
        keep_own_backdrop: share of scenes left on the studio's own backdrop (a 3D "photo" backdrop is always
            replaced, so test photos never reach training).
    """
    import time

    from sievenet.errors import TryOnError
    from sievenet.preprocess.masks import select_person
    from sievenet.preprocess.pose import MediaPipe
    from sievenet.synthetic import SyntheticTryOn

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    ds = SyntheticTryOn(split, seed=seed, size=size, studio=studio, n=n)
    mp = MediaPipe()
    start, rendered = time.perf_counter(), 0
    for first in range(0, n, SHARD):
        shard = folder / f"shard_{first // SHARD:04d}"
        if (shard / "done.json").exists():
            continue
        rows: dict[str, list] = {k: [] for k in FILES}
        for index in range(first, min(first + SHARD, n)):
            sample = render_scene(ds, index, seed=seed, photos=photos, keep_own_backdrop=keep_own_backdrop)
            found = mp.pose_and_mask(sample["image"])
            mask = None
            if found is not None:  # keypoints without a mask count as not found: the pipeline refuses those
                with contextlib.suppress(TryOnError):
                    mask = select_person(found[1], found[0])
            if mask is not None:
                sample["mp_kp"] = found[0].astype(np.float32)
                sample["mp_mask"] = np.round(mask * 255).astype(np.uint8)
            for key in FILES:
                rows[key].append(sample[key])
        tmp = folder / f".{shard.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for key in FILES:
            np.save(tmp / f"{key}.npy", np.stack(rows[key]))
        found_count = sum(int(k[:, 2].max() > 0) for k in rows["mp_kp"])
        meta = {"studio": studio, "split": split, "seed": seed, "first": first, "count": len(rows["image"]),
                "size": list(size), "mediapipe_found": found_count}  # fmt: skip
        (tmp / "done.json").write_text(json.dumps(meta) + "\n")
        shutil.rmtree(shard, ignore_errors=True)
        os.replace(tmp, shard)
        rendered += meta["count"]
        rate = rendered / (time.perf_counter() - start)
        log(f"{folder}: {min(first + SHARD, n)}/{n} scenes ({rate:.2f}/s in this run, found {found_count})")
    return folder


class Shards:
    """Every rendered scene under some folders, memory-mapped."""

    def __init__(self, folders: list[str | os.PathLike]):
        self.parts: list[dict[str, np.ndarray]] = []
        for folder in folders:
            for shard in sorted(Path(folder).glob("shard_*")):
                if (shard / "done.json").exists():
                    self.parts.append({k: np.load(shard / f"{k}.npy", mmap_mode="r") for k in FILES})
        if not self.parts:
            raise FileNotFoundError(f"no rendered shards under {', '.join(map(str, folders))}; render first")
        self.index = [(p, j) for p, part in enumerate(self.parts) for j in range(len(part["image"]))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        p, j = self.index[i]
        return {k: np.asarray(v[j]) for k, v in self.parts[p].items()}


def _truth_mask(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The true person mask, grown or shrunk and softened like a segmentation model's."""
    mask = (label > 0).astype(np.uint8)
    k = int(rng.integers(-3, 4))
    if k:
        kernel = np.ones((2 * abs(k) + 1,) * 2, np.uint8)
        mask = cv2.dilate(mask, kernel) if k > 0 else cv2.erode(mask, kernel)
    soft = mask.astype(np.float32)
    return cv2.GaussianBlur(soft, (0, 0), rng.uniform(0.5, 2.5))


def _truth_keypoints(kp: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    out = np.array(kp, np.float32, copy=True)
    out[:, :2] += rng.normal(0, 0.008 * height, size=(18, 2))
    drop = rng.random(18) < 0.08
    drop[[1, 2, 5]] = False  # the framing needs the shoulders, as the pipeline does
    out[drop, 2] = 0
    return visible(out)


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light, colour cast, blur, sensor noise and JPEG on a uint8 crop."""
    img = image.astype(np.float32) / 255
    img = img ** rng.uniform(0.7, 1.4)
    img = (img - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.1, 0.1)
    img = img * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.6, 1.3)
    if rng.random() < 0.3:  # light from one side
        h, w = img.shape[:2]
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (np.cos(a) * (xx / w - 0.5) + np.sin(a) * (yy / h - 0.5)) * rng.uniform(0.2, 0.6)
        img = img * (1 + ramp[..., None])
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.3))
    if rng.random() < 0.5:
        img = img + rng.normal(0, rng.uniform(0.005, 0.04), size=img.shape).astype(np.float32)
    out = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 96))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)


def _flip(image, label, mask, kp, width):
    label = label[:, ::-1].copy()
    left, right = label == Label.LEFT_ARM, label == Label.RIGHT_ARM
    label[left], label[right] = Label.RIGHT_ARM, Label.LEFT_ARM
    kp = kp.copy()
    kp[:, 0] = np.where(kp[:, 2] > 0, width - 1 - kp[:, 0], 0)  # pixel centres at whole numbers, as in crop()
    for a, b in FLIP_PAIRS:
        kp[[a, b]] = kp[[b, a]]
    return np.ascontiguousarray(image[:, ::-1]), label, np.ascontiguousarray(mask[:, ::-1]), kp


def frame_sample(
    sample: dict[str, np.ndarray],
    size: tuple[int, int],
    rng: np.random.Generator | None = None,
    *,
    augment: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut a rendered scene the way the pipeline cuts a photo: (crop, labels, person mask, keypoints) at `size`.

    With augment, the photo may end anywhere from just under the chest to the feet, the mask and keypoints
    are mediapipe's (3 in 4 times, when it found the person) or the truth's made imperfect, the box wobbles a
    little, and the crop is mirrored and degraded.
    """
    rng = rng or np.random.default_rng(0)
    image, label = sample["image"], sample["label"]
    h = image.shape[0]
    found = sample["mp_kp"][:, 2].max() > 0
    if found and (not augment or rng.random() < 0.75):
        mask, kp = sample["mp_mask"].astype(np.float32) / 255, visible(sample["mp_kp"])
    elif augment:
        mask, kp = _truth_mask(label, rng), _truth_keypoints(sample["kp"], h, rng)
    else:
        mask, kp = (label > 0).astype(np.float32), visible(sample["kp"])
    true_kp = sample["kp"]
    if augment and rng.random() < 0.55 and min(true_kp[2, 2], true_kp[5, 2]) > 0:
        shoulder_y = float(true_kp[[2, 5], 1].mean())
        width = float(abs(true_kp[2, 0] - true_kp[5, 0])) + 1.0
        bottom = int(rng.uniform(shoulder_y + 0.6 * width, h))
        image, label, mask = image[:bottom], label[:bottom], mask[:bottom]
        kp = kp.copy()
        kp[kp[:, 1] > bottom - 1, 2] = 0
    if (mask >= 0.5).sum() < 20:
        mask = (label > 0).astype(np.float32)
    box = person_box(mask, kp, size)
    if augment:
        s = rng.uniform(0.94, 1.08)
        dx, dy = rng.uniform(-0.04, 0.04) * box.width, rng.uniform(-0.03, 0.03) * box.height
        cx, cy = box.x0 + box.width / 2 + dx, box.y0 + box.height / 2 + dy
        box = type(box)(cx - box.width * s / 2, cy - box.height * s / 2, box.width * s, box.height * s)
    out_image = crop(image, box, size)
    out_label = crop(label, box, size, fill=0, nearest=True).astype(np.int64)
    out_mask = crop(mask, box, size, fill=0.0)
    out_kp = keypoints_to_crop(kp, box, size)
    if augment:
        if rng.random() < 0.5:
            out_image, out_label, out_mask, out_kp = _flip(out_image, out_label, out_mask, out_kp, size[1])
        out_image = _photometric(out_image, rng)
    return out_image, out_label, out_mask, out_kp


def batch(
    shards: Shards, config: ParserConfig, batch_size: int, seed: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training batch `step`: a pure function of (seed, step), so a resumed run sees the same batches."""
    rng = np.random.default_rng([seed, step])
    picks = rng.integers(len(shards), size=batch_size)
    xs, ys = [], []
    size = (config.height, config.width)
    for i in picks:
        image, label, mask, kp = frame_sample(shards[int(i)], size, rng)
        xs.append(encode(image, mask, kp, config).numpy())
        ys.append(label)
    return np.stack(xs), np.stack(ys)
