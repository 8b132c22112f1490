"""python -m sievenet.export: a training run becomes a loadable release with its provenance."""

from __future__ import annotations

import json

import pytest
import torch

from sievenet.export import export_run, main
from sievenet.models import SieveNet
from sievenet.train import train
from sievenet.train.config import load_config
from sievenet.train.loop import checkpoint_path, load_checkpoint, save_atomic
from tests.train_helpers import tiny_overrides


def _run(tmp_path, stage: str, name: str, *extra: str):
    config = load_config(
        f"sievenet-s-{stage}.yaml",
        [*tiny_overrides(), f"run_dir={tmp_path / name}", "steps=2", "batch_size=2", "progress=false",
         "tensorboard=false", "image_every=100", "vgg_weights=random", "vgg_layers=1", "vgg_scale=0.5", *extra],
    )  # fmt: skip
    train(config, command=["python", "-m", "sievenet.train", f"sievenet-s-{stage}.yaml", f"run_dir={name}"])
    return config


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """warp run -> release -> seg run (init = that release) -> the same release folder."""
    tmp = tmp_path_factory.mktemp("export")
    release = tmp / "release"
    warp = _run(tmp, "warp", "warp")
    export_run(warp.run_dir, release)
    warp_manifest = json.loads((release / "manifest.json").read_text())
    seg = _run(tmp, "seg", "seg", f"init={release}")
    export_run(seg.run_dir, release)
    return tmp, release, warp_manifest, seg


def test_release_loads_and_matches_checkpoint(chain):
    _, release, _, seg = chain
    model = SieveNet.from_pretrained(release)  # sha256 and strict load checked inside
    saved = load_checkpoint(checkpoint_path(seg.run_dir))["stage"]["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_manifest_records_the_chain(chain):
    _, release, warp_manifest, seg = chain
    manifest = json.loads((release / "manifest.json").read_text())
    assert warp_manifest["trained_stages"] == ["warp"]
    assert manifest["trained_stages"] == ["warp", "seg"]
    assert manifest["steps"] == {"warp": 2, "seg": 2}
    assert manifest["data"] == {"source": "synthetic", "seed": 0, "size": 8, "pairs": "paired"}
    assert manifest["perceptual_backbone"] == {"warp": "random"}  # seg uses no perceptual loss
    assert manifest["stages"]["warp"] == warp_manifest["stages"]["warp"]  # carried over unchanged
    commands = manifest["reproduce"]["commands"]
    assert len(commands) == 4 and commands[0].startswith("python -m sievenet.train sievenet-s-warp.yaml")
    assert commands[3].startswith("python -m sievenet.export")
    assert manifest["stages"]["seg"]["config"]["init"] == str(release)


def test_warp_stage_from_seg_release_keeps_only_warp_stage(chain):
    tmp, release, _, _ = chain
    # A retrained warp keeps none of the later stages' records: they were trained against the old warp.
    config = _run(tmp, "warp", "warp2", f"init={release}")
    other = tmp / "other"
    export_run(config.run_dir, other)
    assert json.loads((other / "manifest.json").read_text())["trained_stages"] == ["warp"]


def test_unfinished_run_is_refused(chain, tmp_path):
    tmp, _, _, seg = chain
    ckpt = load_checkpoint(checkpoint_path(seg.run_dir))
    ckpt["step"] = 1  # as if killed after step 1 of 2
    run = tmp_path / "killed"
    checkpoint_path(run).parent.mkdir(parents=True)
    ckpt["config"]["run_dir"] = str(run)
    save_atomic(ckpt, checkpoint_path(run))
    with pytest.raises(ValueError, match="stopped at step 1 of 2"):
        export_run(run, tmp_path / "out")
    export_run(run, tmp_path / "out", allow_unfinished=True)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"]["seg"] == 1


def test_cli_reports_missing_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "no checkpoint" in capsys.readouterr().err
