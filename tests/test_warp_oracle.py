"""python -m sievenet.warp_oracle: the per-sample TPS fit that bounds what any warp stage could reach."""

from __future__ import annotations

import torch

from sievenet.geometry import tps_grid, warp
from sievenet.warp_oracle import main, tps_oracle
from tests.train_helpers import tiny_release


def test_oracle_recovers_a_known_tps():
    torch.manual_seed(0)
    g, h, w = 3, 32, 24
    cloth = torch.zeros(2, 3, h, w)
    cloth[:, :, 6:26, 5:19] = torch.rand(2, 3, 20, 14) * 2 - 1  # a textured patch on a flat backdrop
    truth = torch.randn(2, 2 * g * g) * 0.05
    target = warp(cloth, tps_grid(truth, g, h, w))
    start = torch.zeros_like(truth)
    before = (warp(cloth, tps_grid(start, g, h, w)) - target).abs().flatten(1).mean(1)
    _, after = tps_oracle(cloth, target, start, g, steps=300, lr=1e-2)
    assert (after < 0.3 * before).all(), (before, after)


def test_cli_reports_coarse_fine_and_oracle(tmp_path, capsys):
    release = tiny_release(tmp_path / "release", stages=("warp",))
    assert main(["--weights", release, "--n", "2", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("I_stn^0 (coarse)", "I_stn^1 (fine)", "TPS oracle"):
        assert name in out
