"""Side-by-side parse pictures on real photos: photo crop | heuristic | learned (assets/parser-compare.png)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from sievenet.labels import colourise

SIZE = (320, 240)  # crop shown per panel; the learned parser resizes it to its own input size


def default_photos() -> list[Path]:
    """The real photo in the gallery (astronaut), matplotlib's grace_hopper.jpg and the 3D-studio persons."""
    root = Path(__file__).resolve().parents[2] / "assets" / "examples" / "persons"
    photos = [root / "astronaut.png"]
    try:
        from matplotlib import cbook

        photos.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except (ImportError, OSError):
        pass
    return photos + sorted(root.glob("studio3d_person_*.png"))


def _panel(image: np.ndarray, labels: np.ndarray | None, title: str) -> np.ndarray:
    out = image if labels is None else (0.4 * image + 0.6 * colourise(labels)).astype(np.uint8)
    out = np.array(out, np.uint8, copy=True)  # the title must not land on the shared crop
    cv2.putText(out, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def compare(
    photos: list[str | Path] | None, out: str | Path, *, weights: str | Path | None = None, per_row: int = 2
) -> Path:
    """Write one picture with a (photo | heuristic | learned) triple per photo, `per_row` triples a row."""
    from sievenet.parser.infer import LearnedParser, neck_to_face
    from sievenet.preprocess.image_io import load_image
    from sievenet.preprocess.person import Preprocessor

    learned = LearnedParser.from_pretrained(weights)
    pre = Preprocessor(parser="heuristic")
    triples = []
    for path in photos or default_photos():
        rgb = load_image(path, what="person photo").array
        found = pre.pose(rgb)
        soft = pre.person_mask(rgb, found)
        framed = pre.frame(rgb, found.keypoints, soft, SIZE)
        heuristic = framed.parse  # this Preprocessor parses with the heuristic
        face = pre.face_box(framed.image, framed.keypoints)
        mine = neck_to_face(learned(framed.image, framed.mask, framed.keypoints), face)  # as the pipeline
        name = Path(path).stem[:22]
        triples.append(np.concatenate(
            [_panel(framed.image, None, name), _panel(framed.image, heuristic, "heuristic"),
             _panel(framed.image, mine, "learned")], axis=1))  # fmt: skip
    blank = np.full_like(triples[0], 255)
    while len(triples) % per_row:
        triples.append(blank)
    rows = [np.concatenate(triples[i : i + per_row], axis=1) for i in range(0, len(triples), per_row)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.concatenate(rows, axis=0)).save(out, optimize=True)
    return out


def time_parsers(
    photo: str | Path | None = None, *, weights=None, size=(256, 192), repeats: int = 10
) -> dict:
    """Median ms of Preprocessor.frame (crop + parse) per parser on one photo, the two interleaved.

    The photo is resized to 1024x768 first (the pipeline budget's size); pose and mask run once, outside the
    timing. The heuristic's time includes its mediapipe face detection, which the learned parser does not need.
    """
    import time

    from sievenet.preprocess.image_io import load_image
    from sievenet.preprocess.person import Preprocessor

    path = photo or default_photos()[0]
    rgb = np.asarray(PIL.Image.fromarray(load_image(path, what="person photo").array).resize((768, 1024)))
    pres = {"heuristic": Preprocessor(parser="heuristic"), "learned": Preprocessor(parser_weights=weights)}
    found = pres["heuristic"].pose(rgb)
    soft = pres["heuristic"].person_mask(rgb, found)
    times: dict[str, list[float]] = {name: [] for name in pres}
    for i in range(repeats + 1):
        for name, pre in pres.items():
            start = time.perf_counter()
            pre.frame(rgb, found.keypoints, soft, size)
            if i:  # the first call builds models
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}
