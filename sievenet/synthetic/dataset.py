"""SyntheticTryOn: the studio as an in-memory torch Dataset (sample i is a pure function of its key)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from sievenet.data.sample import build_sample
from sievenet.labels import lip_to_label
from sievenet.synthetic.params import (
    SPLITS,
    GarmentParams,
    PersonParams,
    describe,
    draw_garment,
    draw_person,
    unpaired_partner,
)
from sievenet.synthetic.render import Scene, render_scene

DEFAULT_LENGTH = {"train": 100_000, "test": 500}
PAIRS = ("paired", "unpaired")


def stem(index: int) -> str:
    """File stem of person/garment `index` in the VITON-HD layout."""
    return f"{index:06d}_00"


@dataclass(frozen=True)
class SceneSpec:
    """What sample i shows, drawn without rendering: the person, the garment worn, the garment tried on."""

    index: int
    person: PersonParams
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
    """

    def __init__(
        self,
        split: str,
        pairs: str = "paired",
        seed: int = 0,
        size: tuple[int, int] = (256, 192),
        n: int | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if pairs not in PAIRS:
            raise ValueError(f"pairs must be one of {PAIRS}, got {pairs!r}")
        h, w = size
        if h < 32 or w < 24:
            raise ValueError(f"size must be at least (32, 24) to draw a person, got {tuple(size)}")
        self.split, self.pairs, self.seed, self.size = split, pairs, int(seed), (int(h), int(w))
        self.n = DEFAULT_LENGTH[split] if n is None else int(n)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {n}")

    def __len__(self) -> int:
        return self.n

    def spec(self, index: int) -> SceneSpec:
        """Draw sample `index`'s scene parameters and metadata without rendering (cheap)."""
        if not 0 <= index < self.n:
            raise IndexError(f"sample index {index} out of range for {self.n} samples")
        person = draw_person(self.split, self.seed, index)
        worn = draw_garment(self.split, self.seed, index)
        tried_index = unpaired_partner(index) if self.pairs == "unpaired" else index
        tried = draw_garment(self.split, self.seed, tried_index) if tried_index != index else worn
        meta = describe(person, tried)
        meta.update(
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
        return SceneSpec(index, person, worn, tried, tried_index, meta)

    def render(self, index: int) -> tuple[SceneSpec, Scene, Scene]:
        """Render sample `index`: (spec, the person's scene, the scene with the tried garment)."""
        spec = self.spec(index)
        h, w = self.size
        scene = render_scene(spec.person, spec.worn, h, w)
        truth = scene if spec.tried is spec.worn else render_scene(spec.person, spec.tried, h, w)
        return spec, scene, truth

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | dict]:
        if index < 0:
            index += self.n
        spec, scene, truth = self.render(index)
        unpaired = truth is not scene
        return build_sample(
            person=scene.image,
            parse=lip_to_label(scene.lip),
            keypoints=scene.keypoints,
            cloth=truth.cloth,
            cloth_mask=truth.cloth_mask,
            meta=spec.meta,
            truth=truth.image if unpaired else None,  # None: the person image is the truth
            truth_parse=lip_to_label(truth.lip) if unpaired else None,
        )
