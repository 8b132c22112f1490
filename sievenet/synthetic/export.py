"""Write the studio's samples to disk in the VITON-HD layout, and draw a contact sheet of them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from sievenet.data.openpose import write_openpose_json
from sievenet.data.processes import one_thread_children
from sievenet.data.viton import write_flow_png, write_lip_png
from sievenet.labels import colourise, lip_to_label
from sievenet.synthetic.body import SKELETON
from sievenet.synthetic.dataset import SyntheticTryOn, stem
from sievenet.synthetic.garment import flat_garment
from sievenet.synthetic.params import draw_garment, unpaired_partner


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, optimize=False, compress_level=6)


def _save_cloth(folder: Path, name: str, cloth: np.ndarray, mask: np.ndarray) -> None:
    _save_png(folder / "cloth" / f"{name}.png", cloth)
    _save_png(folder / "cloth-mask" / f"{name}.png", (mask > 0).astype(np.uint8) * 255)


def export(
    out: str | os.PathLike,
    split: str,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (256, 192),
    studio: str = "2d",
    workers: int = 1,
) -> Path:
    """Write n samples of `split` under `out` in the VITON-HD layout (DESIGN §7); returns the split folder.

    Person i wears garment i (`{split}_pairs.txt`). For the test split, also `image-unpaired/` and
    `image-parse-unpaired/` with person i re-rendered in garment i^1, listed in `test_pairs_unpaired.txt`,
    plus their metadata in `meta-unpaired/`. 3D scenes also write `flow/{person}__{cloth}.png` (paired and
    unpaired), the dense truth -> cloth correspondence (sievenet.data.viton.write_flow_png).
    `workers` > 1 renders in that many spawned processes (one per core); the files are the same bytes.
    """
    out = Path(out)
    folder = out / split
    subdirs = ["image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json", "meta"]
    unpaired = split == "test"
    if unpaired:
        subdirs += ["image-unpaired", "image-parse-unpaired", "meta-unpaired"]
    if studio != "2d":
        subdirs.append("flow")
    for sub in subdirs:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    workers = min(workers, n)
    if workers == 1:
        _export_range(folder, split, n, seed, size, studio, range(n))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no OpenGL context crosses a fork
        chunks = [range(k * n // workers, (k + 1) * n // workers) for k in range(workers)]
        with one_thread_children():
            pool = ctx.Pool(workers)
        with pool:
            pool.starmap(_export_range, [(folder, split, n, seed, size, studio, c) for c in chunks])
    pair_lines = [f"{stem(i)}.png {stem(i)}.png" for i in range(n)]
    (out / f"{split}_pairs.txt").write_text("\n".join(pair_lines) + "\n")
    if unpaired:
        lines = [f"{stem(i)}.png {stem(unpaired_partner(i))}.png" for i in range(n)]
        (out / f"{split}_pairs_unpaired.txt").write_text("\n".join(lines) + "\n")
    return folder


def _export_range(
    folder: Path, split: str, n: int, seed: int, size: tuple[int, int], studio: str, indices: range
) -> None:
    """Render and write samples `indices` of an export (one worker's share)."""
    import torch

    torch.set_num_threads(1)  # one process per core
    paired_ds = SyntheticTryOn(split, "paired", seed=seed, size=size, n=n, studio=studio)
    unpaired_ds = SyntheticTryOn(split, "unpaired", seed=seed, size=size, n=n, studio=studio)
    unpaired = split == "test"
    for i in indices:
        name = stem(i)
        spec = paired_ds.spec(i)
        if unpaired:  # one render gives both: the person's scene is the same bytes as the paired render's
            uspec, scene, truth = unpaired_ds.render(i)
        else:
            _, scene, _ = paired_ds.render(i)
        _save_png(folder / "image" / f"{name}.png", scene.image)
        write_lip_png(folder / "image-parse-v3" / f"{name}.png", scene.lip)
        write_openpose_json(folder / "openpose_json" / f"{name}_keypoints.json", scene.keypoints)
        _save_cloth(folder, name, scene.cloth, scene.cloth_mask)
        (folder / "meta" / f"{name}.json").write_text(json.dumps(spec.meta, indent=1))
        if studio != "2d":  # 2D scenes of a mix get an all-invalid flow, so every sample has one
            write_flow_png(folder / "flow" / f"{name}__{name}.png", _flow_of(scene, size))
        if unpaired:
            other = stem(uspec.tried_index)
            key = f"{name}__{other}"
            _save_png(folder / "image-unpaired" / f"{key}.png", truth.image)
            write_lip_png(folder / "image-parse-unpaired" / f"{key}.png", truth.lip)
            (folder / "meta-unpaired" / f"{key}.json").write_text(json.dumps(uspec.meta, indent=1))
            if studio != "2d":
                write_flow_png(folder / "flow" / f"{key}.png", _flow_of(truth, size))
            if uspec.tried_index >= n:  # odd n: the last person's partner garment is not otherwise exported
                _save_cloth(folder, other, truth.cloth, truth.cloth_mask)


def _flow_of(scene, size: tuple[int, int]) -> np.ndarray:
    flow = getattr(scene, "flow", None)
    return np.zeros((3, *size), np.float32) if flow is None else flow


def garment_image(split: str, seed: int, index: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Product image (uint8) and mask of garment `index`, without rendering a person."""
    flat = flat_garment(draw_garment(split, seed, index), *size)
    return np.clip(np.round(flat.image * 255), 0, 255).astype(np.uint8), flat.mask.astype(np.uint8)


def skeleton_image(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The person image, faded, with the COCO-18 skeleton drawn on top."""
    canvas = (image.astype(np.float32) * 0.5 + 127).astype(np.uint8)
    thick = max(1, round(image.shape[0] / 128))
    for a, b in SKELETON:
        if keypoints[a, 2] > 0 and keypoints[b, 2] > 0:
            pa = tuple(int(v) for v in np.round(keypoints[a, :2]))
            pb = tuple(int(v) for v in np.round(keypoints[b, :2]))
            cv2.line(canvas, pa, pb, (40, 90, 220), thick, cv2.LINE_AA)
    for k in range(18):
        if keypoints[k, 2] > 0:
            c = tuple(int(v) for v in np.round(keypoints[k, :2]))
            cv2.circle(canvas, c, thick + 1, (230, 40, 40), -1, cv2.LINE_AA)
    return canvas


def contact_sheet(
    n: int = 24,
    split: str = "test",
    seed: int = 0,
    size: tuple[int, int] = (256, 192),
    cols: int = 3,
    studio: str = "2d",
) -> np.ndarray:
    """A sheet a human can judge at a glance: per sample person | cloth | parse | pose | unpaired truth + cloth."""
    ds = SyntheticTryOn(split, "unpaired", seed=seed, size=size, n=max(n, 2), studio=studio)
    h, w = size
    tiles = []
    for i in range(n):
        spec, scene, truth = ds.render(i)
        row = [
            scene.image,
            scene.cloth,
            colourise(lip_to_label(scene.lip)),
            skeleton_image(scene.image, scene.keypoints),
            truth.cloth,
            truth.image,
        ]
        strip = np.concatenate([np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in row], 1)
        label = Image.new("RGB", (strip.shape[1], 14), (255, 255, 255))
        m = spec.meta
        worn = spec.worn
        text = f"#{i} wears {worn.sleeve}/{worn.neckline}/{worn.fit}/{worn.texture}"
        text += f"  cross={int(m['arms_crossing'])} hair={int(m['hair_over_garment'])}"
        if spec.studio == "3d":
            text += f" {m['pose']}/{m['framing']}"
        text += f"  | tries {m['sleeve']}/{m['neckline']}/{m['fit']}/{m['texture']}"
        ImageDraw.Draw(label).text((2, 1), text, fill=(0, 0, 0))
        tiles.append(np.concatenate([np.asarray(label), strip], 0))
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate([np.pad(t, ((0, 6), (0, 10), (0, 0)), constant_values=255) for t in tiles[r : r + cols]], 1)
            for r in range(0, len(tiles), cols)]  # fmt: skip
    return np.concatenate(rows, 0)


# What the gallery should show, one scene per entry: each a hard case or a look the app should offer.
_GALLERY_WANTS = (
    lambda m: m["arms_crossing"],
    lambda m: m["hair_over_garment"],
    lambda m: m["sleeve"] == "sleeveless",
    lambda m: m["texture"] == "print",
    lambda m: m["lower"] == "skirt",
    lambda m: m["sleeve"] == "long" and m["texture"] == "stripes",
    lambda m: m["fit"] == "loose",
    lambda m: m["hair"] == "short",
)
_GARMENT_WANTS = ("print", "stripes", "checks", "dots", "photo", "gradient", "noise", "solid")


def write_gallery(out: str | os.PathLike, seed: int = 0, size: tuple[int, int] = (512, 384)) -> list[str]:
    """Render the example gallery (8 persons, 8 garments) from the test split; returns lines for LICENSES.md.

    Persons are picked in index order to cover the hard cases, among scenes in which the app's default pose
    backend (mediapipe) finds the person, so every example works with one click; garments are picked to cover
    the texture families.
    """
    from sievenet.errors import TryOnError
    from sievenet.preprocess.person import Preprocessor

    preprocessor = Preprocessor()

    def detected(image: np.ndarray) -> bool:
        try:
            preprocessor.pose(image)
        except TryOnError:
            return False
        return True

    out = Path(out)
    (out / "persons").mkdir(parents=True, exist_ok=True)
    (out / "garments").mkdir(parents=True, exist_ok=True)
    ds = SyntheticTryOn("test", "paired", seed=seed, size=size, n=10_000)
    lines, used = [], set()
    for want in _GALLERY_WANTS:
        for i in (i for i in range(ds.n) if i not in used and want(ds.spec(i).meta)):
            _, scene, _ = ds.render(i)
            if detected(scene.image):
                break
        used.add(i)
        name = f"studio_person_{i:04d}.png"
        _save_png(out / "persons" / name, scene.image)
        lines.append(
            f"persons/{name}: SieveNet Studio render, test split, seed {seed}, index {i}, {size[0]}x{size[1]}"
        )
    found = set()
    for family in _GARMENT_WANTS:
        j = next(j for j in range(ds.n) if j not in found and draw_garment("test", seed, j).texture == family)
        found.add(j)
        image, _ = garment_image("test", seed, j, size)
        name = f"studio_garment_{j:04d}_{family}.png"
        _save_png(out / "garments" / name, image)
        lines.append(
            f"garments/{name}: SieveNet Studio render, test split, seed {seed}, garment {j}, {size[0]}x{size[1]}"
        )
    return lines


# The 3D studio's gallery: scenes like the photos people upload (framings, hair over the garment, prints).
_GALLERY3D_WANTS = (
    lambda m: m["hair_over_garment"] and m["framing"] in ("waist", "knee"),
    lambda m: m["texture"] == "print" and m["framing"] in ("waist", "knee") and m["pose"] == "down",
    lambda m: m["framing"] == "full" and m["background"] == "studio",
    lambda m: m["background"] == "photo" and m["framing"] == "knee",
)
_GARMENT3D_WANTS = ("print", "stripes", "checks", "photo")


def write_gallery3d(out: str | os.PathLike, seed: int = 0, size: tuple[int, int] = (512, 384)) -> list[str]:
    """Render 3D-studio examples (4 persons, 4 garments) from the test split; returns lines for LICENSES.md.

    Persons are kept only where the app's default pose backend (mediapipe) finds them.
    """
    from sievenet.errors import TryOnError
    from sievenet.preprocess.person import Preprocessor

    preprocessor = Preprocessor()
    out = Path(out)
    (out / "persons").mkdir(parents=True, exist_ok=True)
    (out / "garments").mkdir(parents=True, exist_ok=True)
    ds = SyntheticTryOn("test", "paired", seed=seed, size=size, n=2_000, studio="3d")
    lines, used = [], set()
    for want in _GALLERY3D_WANTS:
        for i in (i for i in range(ds.n) if i not in used and want(ds.spec(i).meta)):
            _, scene, _ = ds.render(i)
            try:
                preprocessor.pose(scene.image)
            except TryOnError:
                continue
            break
        used.add(i)
        name = f"studio3d_person_{i:04d}.png"
        _save_png(out / "persons" / name, scene.image)
        lines.append(
            f"persons/{name}: SieveNet Studio 3D render, test split, seed {seed}, index {i}, {size[0]}x{size[1]}"
        )
    found = set()
    for family in _GARMENT3D_WANTS:
        j = next(j for j in range(ds.n) if j not in found and draw_garment("test", seed, j).texture == family)
        found.add(j)
        _, scene, _ = ds.render(j)
        name = f"studio3d_garment_{j:04d}_{family}.png"
        _save_png(out / "garments" / name, scene.cloth)
        lines.append(
            f"garments/{name}: SieveNet Studio 3D product render, test split, seed {seed}, garment {j}, "
            f"{size[0]}x{size[1]}"
        )
    return lines


def bench_worker(studio: str, size: tuple[int, int], seed: int, start: int, n: int, queue, go) -> None:
    """One process of `python -m sievenet.synthetic bench`: warm up, wait for the start signal, render n samples."""
    import os

    import torch

    from sievenet.synthetic.dataset import SyntheticTryOn

    os.environ.setdefault("LP_NUM_THREADS", "1")
    torch.set_num_threads(1)  # one DataLoader worker is one process on one core
    ds = SyntheticTryOn("train", "unpaired", seed=seed, size=size, n=start + n + 4, studio=studio)
    for i in range(4):  # warm up: body model, renderer, photo textures
        ds[start + n + i]
    queue.put("ready")
    go.wait()  # until every worker is warm (an Event: a queue would hand the worker its own "ready")
    for i in range(start, start + n):
        ds[i]
    queue.put("done")
