"""Training on a mix of pairs rendered ahead to disk and the on-the-fly studio (issue 15's v2 data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sievenet.data import MixedDataset
from sievenet.train.config import CONFIG_DIR, ConfigError, load_config
from sievenet.train.stages import build_dataset
from tests.train_helpers import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]


class _Tagged:
    """A fake source whose sample i says where it came from."""

    def __init__(self, name: str, n: int):
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        sample = {k: torch.zeros(1) for k in ("person", "cloth", "cloth_mask", "priors", "tt_priors", "parse",
                                               "worn_mask", "target_warp", "truth", "keypoints")}  # fmt: skip
        return sample | {"flow": torch.zeros(3), "meta": {"source": self.name, "index": i}}


def test_mixed_dataset_spreads_the_share_evenly_and_is_a_pure_function_of_the_index():
    mix = MixedDataset(_Tagged("disk", 3), _Tagged("studio", 100), 0.25, n=40)
    sources = [mix[i]["meta"]["source"] for i in range(40)]
    assert sources.count("disk") == 10
    for start in range(0, 40, 4):  # every 4 consecutive samples hold exactly one rendered pair
        assert sources[start : start + 4].count("disk") == 1
    disk = [mix[i]["meta"]["index"] for i in range(40) if sources[i] == "disk"]
    assert disk == [k % 3 for k in range(10)]  # the rendered pairs in order, cycling
    studio = [mix[i]["meta"]["index"] for i in range(40) if sources[i] == "studio"]
    assert studio == list(range(30))  # the studio's samples, none skipped or repeated
    assert "flow" not in mix[0] and mix[5]["meta"] == mix[5]["meta"]  # keys every source has
    assert [mix[i]["meta"] for i in range(40)] == [mix[i]["meta"] for i in range(40)]
    assert {MixedDataset(_Tagged("a", 2), _Tagged("b", 2), s, n=8)[0]["meta"]["source"] for s in (0, 1)} == {
        "a",
        "b",
    }
    with pytest.raises(ValueError, match="first_share"):
        MixedDataset(_Tagged("a", 1), _Tagged("b", 1), 1.5)
    with pytest.raises(IndexError):
        mix.source(40)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """A tiny VITON-HD-layout folder of pre-rendered train pairs (the 2D studio: fast, no anny needed)."""
    from sievenet.synthetic.export import export

    root = tmp_path_factory.mktemp("rendered")
    export(root, "train", 4, seed=7, size=(64, 48))
    return root


def test_disk_root_mixes_rendered_pairs_into_the_studio(tmp_path, rendered):
    config = load_config("sievenet-s-warp.yaml", [*tiny_overrides(), f"disk_root={rendered}", "disk_share=0.5",
                                                  f"run_dir={tmp_path / 'run'}"])  # fmt: skip
    dataset, collate_fn = build_dataset(config)
    assert isinstance(dataset, MixedDataset) and len(dataset) == config.data_size == 8
    batch = collate_fn([dataset[i] for i in range(4)])  # two rendered pairs, two studio samples
    assert [m["mix_source"] for m in batch["meta"]] == ["second", "first", "second", "first"]
    assert batch["person"].shape == (4, 3, 64, 48) and batch["priors"].shape == (4, 19, 64, 48)
    # the rendered pair is the exported file, read back (seed 7: not a sample the studio would draw here)
    assert batch["meta"][1]["seed"] == 7 and batch["meta"][0]["seed"] == 0


def test_missing_disk_root_says_how_to_render_it(tmp_path):
    config = load_config("sievenet-s-warp.yaml", [*tiny_overrides(), f"disk_root={tmp_path / 'none'}"])
    with pytest.raises(ConfigError, match="v2-data"):
        build_dataset(config)
    with pytest.raises(ConfigError, match="disk_share"):
        load_config("sievenet-s-warp.yaml", ["disk_share=2"])
    with pytest.raises(ConfigError, match="data=synthetic"):
        load_config("sievenet-s-warp.yaml", ["data=viton-hd", "data_root=x", "disk_root=y"])


def test_v2_yamls_chain_their_stages_on_the_rendered_3d_pairs():
    previous = None
    for stage in ("warp", "seg", "warp-fine", "tt"):
        config = load_config(CONFIG_DIR / f"sievenet-s-v2-{stage}.yaml")
        assert (
            config.stage == stage and config.disk_root == "runs/data/studio3d-v2" and config.disk_share == 0.5
        )
        assert config.init == (None if previous is None else f"weights/sievenet-s-v2-stages/{previous}")
        assert config.studio == "2d"  # the on-the-fly half keeps the 2D studio's hard cases
        previous = stage
    tt = load_config(CONFIG_DIR / "sievenet-s-v2-tt.yaml")
    assert (tt.tt_structural, tt.tt_vgg_weight, tt.triplet) == ("ms-ssim", 0.0, "feature")
    assert load_config(CONFIG_DIR / "sievenet-s-v2-warp.yaml").pgm_detach_coarse


def test_reproduce_v2_chains_the_stages_from_the_rendered_pairs(tmp_path, rendered):
    env = {**os.environ, "V2_OUT": str(tmp_path / "v2"), "V2_STAGES": str(tmp_path / "stages"),
           "V2_RUNS": str(tmp_path / "runs"), "V2_DATA": str(rendered), "V2_RENDER_N": "4", "EVAL_N": "2",
           "EVAL_STUDIOS": "2d", "PHOTO_N": "0", "EVAL_PANEL": "0", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    tiny = [
        *tiny_overrides(),
        "steps=2",
        "batch_size=2",
        "progress=false",
        "tensorboard=false",
        "vgg_layers=1",
    ]
    script = ROOT / "sievenet" / "train" / "reproduce.sh"
    for stage in ("warp", "seg", "warp-fine", "tt"):
        extra = {"warp-fine": ["lr_decay_from=1"], "tt": ["lr_decay_from=1", "triplet_after=1"]}.get(
            stage, []
        )
        done = subprocess.run(["bash", str(script), "v2", stage, *tiny, *extra], env=env, capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "already holds 4 pairs" in done.stdout  # the render is not redone
        release = tmp_path / ("v2" if stage == "tt" else f"stages/{stage}")
        manifest = json.loads((release / "manifest.json").read_text())
        assert manifest["stages"][stage]["config"]["disk_root"] == str(rendered)
    done = subprocess.run(["bash", str(script), "v2", "eval"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert manifest["trained_stages"] == ["warp", "seg", "warp-fine", "tt"]
    assert manifest["metrics"]["2d"]["n"] == 2 and "unpaired_garment_ssim" in manifest["metrics"]["2d"]


def test_timing_projects_the_v2_yamls_and_the_render(monkeypatch, capsys):
    from sievenet.train import timing

    assert timing._config_name("sievenet-s-v2", "sievenet-s", "seg") == "sievenet-s-v2-seg.yaml"
    assert timing._config_name("sievenet-s-none", "sievenet-s", "seg") == "sievenet-s-seg.yaml"  # fallback
    seen = []
    monkeypatch.setattr(
        timing, "time_stage", lambda name, overrides, steps: seen.append((name, overrides)) or [1.0]
    )
    monkeypatch.setattr(timing, "time_render", lambda samples: 0.5)
    assert timing.main(["--configs", "sievenet-s-v2", "--render-n", "120", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert [name for name, _ in seen] == [
        f"sievenet-s-v2-{s}.yaml" for s in ("warp", "seg", "warp-fine", "tt", "tt")
    ]
    assert "3D render:    120 pairs     1.0 min" in out  # 120 x 0.5 s
    steps = sum(
        load_config(f"sievenet-s-v2-{s}.yaml", ["init=x"]).steps for s in ("warp", "seg", "warp-fine", "tt")
    )
    assert f"total render and training: {(steps * 1.0 + 60) / 3600:.2f} h" in out


def test_a_run_resumes_with_its_rendered_pairs_moved(tmp_path, rendered):
    import shutil

    from sievenet.train.loop import load_checkpoint
    from tests.test_train import _config, _train

    moved = tmp_path / "moved"
    shutil.copytree(rendered, moved)
    _train(_config(tmp_path, stage="warp", disk_root=rendered, steps=2, pgm="false", tensorboard="false"))
    config = _config(tmp_path, stage="warp", disk_root=moved, steps=3, pgm="false", resume="true",
                     tensorboard="false")  # fmt: skip
    _train(config)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 3
