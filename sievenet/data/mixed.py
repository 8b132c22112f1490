"""MixedDataset: two sample sources interleaved at a fixed share, e.g. 3D-studio pairs rendered ahead to disk
beside the 2D studio drawn on the fly (the 3D studio renders a few samples a second per core: slower than
training consumes, so its training pairs are rendered once with `python -m sievenet.synthetic export`)."""

from __future__ import annotations

import math

from torch.utils.data import Dataset

from sievenet.data.sample import TENSOR_KEYS


class MixedDataset(Dataset):
    """Sample i comes from `first` for a `first_share` of the indices, spread evenly, else from `second`.

    Index i is from `first` when floor((i + 1) * share) > floor(i * share); the k-th such index reads
    first[k mod len(first)] and the others read second in order (mod its length), so every sample is a pure
    function of i and a shuffled sampler sees the share in every stretch of the data. Only the keys every
    source yields are kept (DESIGN §7's tensors and meta; the 3D studio's `flow` is dropped), so a batch can
    hold samples of both.

    Args:
        first, second: map-style datasets yielding the sample dict.
        first_share: fraction of the samples drawn from `first`, in [0, 1].
        n: length (default: len(first) + len(second)).
    """

    def __init__(self, first: Dataset, second: Dataset, first_share: float, n: int | None = None):
        if not 0 <= first_share <= 1:
            raise ValueError(f"first_share must be in [0, 1], got {first_share}")
        if (first_share > 0 and len(first) == 0) or (first_share < 1 and len(second) == 0):
            raise ValueError(f"a source with share > 0 is empty: lengths {len(first)} and {len(second)}")
        self.first, self.second, self.share = first, second, float(first_share)
        self.n = len(first) + len(second) if n is None else int(n)

    def __len__(self) -> int:
        return self.n

    @property
    def renders_3d(self) -> bool:
        """Whether either source renders with OpenGL (sievenet.data.processes.needs_spawn)."""
        return any(getattr(d, "renders_3d", False) for d in (self.first, self.second))

    def source(self, i: int) -> tuple[int, int]:
        """(0 for first or 1 for second, index into that source) of sample i."""
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a MixedDataset of {self.n} samples")
        k = math.floor(i * self.share)
        if math.floor((i + 1) * self.share) > k:
            return 0, k % len(self.first)
        return 1, (i - k) % len(self.second)

    def __getitem__(self, i: int) -> dict:
        which, j = self.source(i)
        sample = (self.first, self.second)[which][j]
        kept = {k: sample[k] for k in TENSOR_KEYS}
        kept["meta"] = {**sample["meta"], "mix_source": ("first", "second")[which]}
        return kept
