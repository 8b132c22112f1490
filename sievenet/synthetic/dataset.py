"""SyntheticTryOn: the studios as an in-memory torch Dataset (sample i is a pure function of its key).

Two renderers share the garments, textures and seed streams: the 2D studio (flat procedural figures,
`render.py`) and the 3D studio (a posed parametric body, `studio3d/`). `studio="mix"` draws each sample's
studio from its own key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from sievenet.data.sample import build_sample
from sievenet.labels import lip_to_label
from sievenet.synthetic.params import (
    SPLITS,
    GarmentParams,
    Person3DParams,
    PersonParams,
    _rng,
    describe,
    describe3d,
    draw_garment,
    draw_person,
    draw_person3d,
    unpaired_partner,
)
from sievenet.synthetic.render import Scene, render_scene

DEFAULT_LENGTH = {"train": 100_000, "test": 500}
PAIRS = ("paired", "unpaired")
STUDIOS = ("2d", "3d", "mix")
MIX_3D = 0.5  # share of 3D scenes in studio="mix"


def stem(index: int) -> str:
    """File stem of person/garment `index` in the VITON-HD layout."""
    return f"{index:06d}_00"


@dataclass(frozen=True)
class SceneSpec:
    """What sample i shows, drawn without rendering: the person, the garment worn, the garment tried on."""

    index: int
    studio: str  # "2d" or "3d"
    person: PersonParams | Person3DParams
    worn: GarmentParams  # the garment in the person image
    tried: GarmentParams  # the garment in `cloth` (== worn when paired)
    tried_index: int
    meta: dict


class SyntheticTryOn(Dataset):
    """Procedural try-on samples with exact labels and, in unpaired mode, rendered ground truth.

    Person i wears garment i. In unpaired mode the cloth is garment `i ^ 1` (its neighbour) and worn_mask,
    target_warp and truth come from the same scene re-rendered with that garment.

    Args:
        split: "train" or "test"; the two draw persons and garments from disjoint seed streams.
        pairs: "paired" or "unpaired".
        seed: dataset seed.
        size: (H, W) of every image.
        n: number of samples; defaults to 100 000 for train, 500 for test.
        studio: "2d" (default, the procedural flat studio), "3d" (rendered parametric bodies; needs anny
            and an EGL-capable OpenGL) or "mix" (each sample's studio drawn from its key, half and half).
    """

    def __init__(
        self,
        split: str,
        pairs: str = "paired",
        seed: int = 0,
        size: tuple[int, int] = (256, 192),
        n: int | None = None,
        studio: str = "2d",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if pairs not in PAIRS:
            raise ValueError(f"pairs must be one of {PAIRS}, got {pairs!r}")
        if studio not in STUDIOS:
            raise ValueError(f"studio must be one of {STUDIOS}, got {studio!r}")
        self.studio = studio
        h, w = size
        if h < 32 or w < 24:
            raise ValueError(f"size must be at least (32, 24) to draw a person, got {tuple(size)}")
        self.split, self.pairs, self.seed, self.size = split, pairs, int(seed), (int(h), int(w))
        self.n = DEFAULT_LENGTH[split] if n is None else int(n)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {n}")

    def __len__(self) -> int:
        return self.n

    @property
    def renders_3d(self) -> bool:
        """Whether samples are rendered with OpenGL (loader workers must then be spawned, not forked)."""
        return self.studio != "2d"

    def spec(self, index: int) -> SceneSpec:
        """Draw sample `index`'s scene parameters and metadata without rendering (cheap)."""
        if not 0 <= index < self.n:
            raise IndexError(f"sample index {index} out of range for {self.n} samples")
        studio = self.studio_of(index)
        worn = draw_garment(self.split, self.seed, index)
        tried_index = unpaired_partner(index) if self.pairs == "unpaired" else index
        tried = draw_garment(self.split, self.seed, tried_index) if tried_index != index else worn
        if studio == "3d":
            person = draw_person3d(self.split, self.seed, index)
            meta = describe3d(person, tried)
        else:
            person = draw_person(self.split, self.seed, index)
            meta = describe(person, tried)
        meta.update(
            studio=studio,
            source="synthetic",
            split=self.split,
            seed=self.seed,
            index=index,
            pairs=self.pairs,
            person_name=stem(index),
            cloth_name=stem(tried_index),
            worn_garment_id=worn.garment_id,
            has_truth=True,
        )
        return SceneSpec(index, studio, person, worn, tried, tried_index, meta)

    def studio_of(self, index: int) -> str:
        """Which renderer draws sample `index` ("2d" or "3d"); for "mix" a pure function of its key."""
        if self.studio != "mix":
            return self.studio
        return "3d" if _rng(self.split, self.seed, index, "studio").random() < MIX_3D else "2d"

    def render(self, index: int, person_extras: bool = True) -> tuple[SceneSpec, Scene, Scene]:
        """Render sample `index`: (spec, the person's scene, the scene with the tried garment).

        3D scenes are `studio3d.Scene3D`, which has every field of `Scene` plus `flow` and `visible`. With
        `person_extras=False`, an unpaired 3D person scene skips its own product photo and flow (None).
        """
        spec = self.spec(index)
        h, w = self.size
        if spec.studio == "3d":
            from sievenet.synthetic.studio3d import render_pair

            tried = None if spec.tried is spec.worn else spec.tried
            scene, truth = render_pair(spec.person, spec.worn, tried, h, w, person_extras=person_extras)
            return spec, scene, scene if truth is None else truth
        scene = render_scene(spec.person, spec.worn, h, w)
        truth = scene if spec.tried is spec.worn else render_scene(spec.person, spec.tried, h, w)
        return spec, scene, truth

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | dict]:
        if index < 0:
            index += self.n
        spec, scene, truth = self.render(index, person_extras=False)  # a sample reads only the truth's cloth
        unpaired = truth is not scene
        sample = build_sample(
            person=scene.image,
            parse=lip_to_label(scene.lip),
            keypoints=scene.keypoints,
            cloth=truth.cloth,
            cloth_mask=truth.cloth_mask,
            meta=spec.meta,
            truth=truth.image if unpaired else None,  # None: the person image is the truth
            truth_parse=lip_to_label(truth.lip) if unpaired else None,
        )
        if self.studio != "2d":
            h, w = self.size
            flow = getattr(truth, "flow", None)
            sample["flow"] = torch.zeros(3, h, w) if flow is None else torch.from_numpy(flow)
        return sample
