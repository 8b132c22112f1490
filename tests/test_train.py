"""The training package: config parsing, the loop, resume, crash safety and DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sievenet.train import train
from sievenet.train.config import CONFIG_DIR, TrainConfig, load_config, parse_overrides
from sievenet.train.loop import StepBatchSampler, checkpoint_path, fit, load_checkpoint
from sievenet.train.stages import SieveNetStage, build_dataset
from tests.train_helpers import tiny_overrides, tiny_release

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path, stage="seg", **extra) -> TrainConfig:
    overrides = [*tiny_overrides(), f"stage={stage}", f"run_dir={tmp_path / 'run'}", "steps=4", "batch_size=2",
                 "log_every=1", "image_every=2", "ckpt_every=1", "progress=false", "vgg_weights=random",
                 "vgg_layers=2", "vgg_scale=0.5", *[f"{k}={v}" for k, v in extra.items()]]  # fmt: skip
    return load_config(CONFIG_DIR / "sievenet-s-warp.yaml", overrides)


def _train(config: TrainConfig) -> SieveNetStage:
    stage = SieveNetStage(config)
    dataset, collate = build_dataset(config)
    fit(stage, dataset, config, collate_fn=collate, command=["test"])
    return stage


def _params(stage: SieveNetStage) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in stage.model.state_dict().items()}


# ---- config -------------------------------------------------------------------------------------------


def test_shipped_configs_load():
    names = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    for size in ("sievenet-s", "sievenet-paper"):
        for stage in ("warp", "seg", "tt"):
            assert f"{size}-{stage}.yaml" in names
    for name in names:
        needs_init = "-tt" in name or "warp-fine" in name
        config = load_config(name, ["init=some/release"] if needs_init else [])
        assert config.stage in name


def test_overrides_are_type_checked():
    parsed = parse_overrides(["steps=12", "lr=1e-3", "pgm=false", "init=null", "model.warp_stages=1"])
    assert parsed == {
        "steps": 12,
        "lr": 1e-3,
        "pgm": False,
        "init": None,
        "model_overrides": {"warp_stages": 1},
    }
    with pytest.raises(ValueError, match="steps must be int"):
        parse_overrides(["steps=many"])
    with pytest.raises(ValueError, match="pgm must be bool"):
        parse_overrides(["pgm=3"])
    with pytest.raises(ValueError, match=r"unknown config key 'stpes'.*'steps'"):
        parse_overrides(["stpes=3"])
    with pytest.raises(ValueError, match=r"unknown model override 'model.depth'.*model.warp_stages"):
        parse_overrides(["model.depth=3"])
    with pytest.raises(ValueError, match="not key=value"):
        parse_overrides(["steps"])
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"stage": "warp", "bogus": 1})
    with pytest.raises(ValueError, match="stage must be one of"):
        load_config("sievenet-s-warp.yaml", ["stage=gan"])
    with pytest.raises(ValueError, match="stage seg needs pairs=paired"):
        load_config("sievenet-s-seg.yaml", ["pairs=unpaired"])


def test_unknown_config_file_lists_shipped_ones():
    with pytest.raises(FileNotFoundError, match="sievenet-s-warp.yaml"):
        load_config("no-such.yaml")


def test_sampler_is_a_pure_function_of_step_and_shards_by_rank():
    full = StepBatchSampler(10, 4, seed=3, start=0, steps=6, rank=0, world=1)
    later = StepBatchSampler(10, 4, seed=3, start=4, steps=6, rank=0, world=1)
    assert list(full)[4:] == list(later)
    r0 = StepBatchSampler(10, 2, seed=3, start=0, steps=6, rank=0, world=2)
    r1 = StepBatchSampler(10, 2, seed=3, start=0, steps=6, rank=1, world=2)
    for a, b, both in zip(r0, r1, full, strict=False):
        assert a + b == both  # the two ranks split the same global batch
    epoch = [i for batch in StepBatchSampler(10, 5, seed=3, start=0, steps=2, rank=0, world=1) for i in batch]
    assert sorted(epoch) == list(range(10))  # every sample once per epoch


# ---- the loop -----------------------------------------------------------------------------------------


def test_seg_stage_trains_and_writes_run(tmp_path):
    config = _config(tmp_path, stage="seg", steps=6, lr=1e-2)
    stage = SieveNetStage(config)
    before = _params(stage)
    dataset, collate = build_dataset(config)
    first = stage.loss(stage.trainable(), collate([dataset[i] for i in range(8)]), 0)[0]
    result = fit(stage, dataset, config, collate_fn=collate)
    after = _params(stage)
    assert result["step"] == 6 and result["logs"]["l_seg"] < first.item()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"seg"}  # warp and tt stayed frozen
    run = Path(config.run_dir)
    assert load_config(run / "config.yaml").to_dict() == config.to_dict()
    ckpt = load_checkpoint(checkpoint_path(run))
    assert ckpt["step"] == 6 and ckpt["info"]["stage"] == "seg"
    assert list((run / "tb").glob("events.*")) and (run / "images" / "step0000006.png").exists()
    rows = (run / "images" / "rows.txt").read_text().split()
    assert {"I_stn0", "I_stn1", "M_exp", "M_cm", "I_rp", "I_tryon"} <= set(rows)


def test_existing_run_needs_resume(tmp_path):
    config = _config(tmp_path, steps=1)
    _train(config)
    with pytest.raises(FileExistsError, match="resume=true"):
        _train(config)
    changed = _config(tmp_path, steps=2, resume=True, lr=0.5)
    with pytest.raises(ValueError, match="config changed.*lr"):
        _train(changed)


@pytest.mark.parametrize("stage", ["warp", "warp-fine", "tt"])
def test_resume_matches_uninterrupted_run(tmp_path, stage):
    extra = {}
    if stage == "warp-fine":
        extra = {"init": tiny_release(tmp_path / "release", stages=("warp",))}
    if stage == "tt":
        # Triplet after 1 step, frozen copy refreshed every 2 (after steps 1 and 3): resuming at 3 must restore it.
        extra = {"init": tiny_release(tmp_path / "release"), "triplet_after": 1, "triplet_refresh": 2}
    extra |= {"image_every": 100, "tensorboard": False}
    whole = _train(_config(tmp_path / "a", stage=stage, steps=4, **extra))
    _train(_config(tmp_path / "b", stage=stage, steps=3, **extra))
    resumed = _train(_config(tmp_path / "b", stage=stage, steps=4, resume=True, **extra))
    a, b = _params(whole), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    if stage == "tt":
        ca = whole.previous.state_dict()
        cb = resumed.previous.state_dict()
        assert all(torch.equal(ca[k], cb[k]) for k in ca)


def test_a_run_copied_before_its_triplet_resumes_as_the_triplet_control(tmp_path):
    """triplet_after may change on resume while neither start reached the steps done: the copy at K, resumed
    with triplet_after=null, is the run without the triplet over the same data, lr and optimiser state."""
    import shutil

    extra = {
        "stage": "tt",
        "init": tiny_release(tmp_path / "release"),
        "image_every": 100,
        "tensorboard": False,
    }
    with_triplet = _train(_config(tmp_path / "a", steps=4, triplet_after=2, **extra))
    _train(_config(tmp_path / "b", steps=2, triplet_after=2, **extra))
    shutil.copytree(tmp_path / "b" / "run", tmp_path / "control")
    control = _train(_config(tmp_path / "b", run_dir=tmp_path / "control", steps=4, triplet_after="null",
                             resume=True, **extra))  # fmt: skip
    without = _train(_config(tmp_path / "c", steps=4, triplet_after="null", **extra))
    a, b, c = _params(with_triplet), _params(control), _params(without)
    assert all(torch.equal(b[k], c[k]) for k in b)  # the control is exactly the run that never had it
    assert any(not torch.equal(a[k], b[k]) for k in a)  # and the triplet did change the last steps
    # Once the triplet has shaped a step already done, its start is fixed.
    _train(_config(tmp_path / "d", steps=3, triplet_after=1, **extra))
    with pytest.raises(ValueError, match="config changed.*triplet_after: 1 -> None"):
        _train(_config(tmp_path / "d", steps=4, triplet_after="null", resume=True, **extra))


def test_lr_decays_linearly_to_zero_from_lr_decay_from():
    config = load_config("sievenet-s-warp.yaml", ["steps=10", "lr=1e-3", "lr_decay_from=6"])
    lrs = [config.lr_at(s) for s in range(10)]
    assert lrs[:7] == [1e-3] * 7
    assert lrs[7:] == pytest.approx([0.75e-3, 0.5e-3, 0.25e-3])
    assert load_config("sievenet-s-warp.yaml", ["steps=10"]).lr_at(9) == 1e-4  # no decay by default
    with pytest.raises(ValueError, match=r"lr_decay_from must be a step in \[0, steps=10\)"):
        load_config("sievenet-s-warp.yaml", ["steps=10", "lr_decay_from=10"])


def test_a_run_can_be_moved_and_extended_with_an_lr_decay(tmp_path):
    import shutil

    extra = {"stage": "warp", "image_every": 100, "tensorboard": False, "lr": 1e-2}
    whole = _train(_config(tmp_path / "a", steps=4, lr_decay_from=2, **extra))
    _train(_config(tmp_path / "b", steps=2, **extra))  # constant lr; its lr so far matches the decayed run's
    shutil.copytree(tmp_path / "b" / "run", tmp_path / "moved")
    extended = _train(_config(tmp_path / "b", run_dir=tmp_path / "moved", steps=4, lr_decay_from=2, resume=True,
                              **extra))  # fmt: skip
    a, b = _params(whole), _params(extended)
    assert all(torch.equal(a[k], b[k]) for k in a)
    constant = _params(_train(_config(tmp_path / "c", steps=4, **extra)))
    assert any(not torch.equal(a[k], constant[k]) for k in a)  # the decay did change the last step
    # Resuming with a schedule that rewrites the lr of steps already done is refused.
    _train(_config(tmp_path / "d", steps=3, lr_decay_from=1, **extra))
    with pytest.raises(ValueError, match="config changed.*steps: 3 -> 6"):
        _train(_config(tmp_path / "d", steps=6, lr_decay_from=1, resume=True, **extra))


def test_warp_fine_stage_trains_only_the_fine_warp_on_the_frozen_coarse_one(tmp_path):
    from sievenet.export import export_run

    release = tiny_release(tmp_path / "release", stages=("warp", "seg"), seed=3)
    config = _config(tmp_path, stage="warp-fine", init=release, steps=4, lr=1e-2)
    stage = SieveNetStage(config)
    before = _params(stage)
    from sievenet.models import SieveNet

    shipped = SieveNet.from_pretrained(release).state_dict()
    assert all(torch.equal(before[k], shipped[k]) for k in before if not k.startswith("warp.fine."))
    # The fine stage restarts from the seeded fresh init, not from the release's fine stage.
    assert any(not torch.equal(before[k], shipped[k]) for k in before if k.startswith("warp.fine."))
    assert not stage.model.warp.coarse.training and stage.model.warp.fine.training
    dataset, collate = build_dataset(config)
    result = fit(stage, dataset, config, collate_fn=collate)
    after = _params(stage)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("warp.fine.") for k in changed)  # coarse weights and BN stats too
    assert {"l_s0", "l_s1", "l_push", "l_align", "l_warp"} <= set(result["logs"]) and result["step"] == 4
    export_run(config.run_dir, tmp_path / "partial")
    manifest = json.loads((tmp_path / "partial" / "manifest.json").read_text())
    assert manifest["trained_stages"] == ["warp", "seg", "warp-fine"]
    assert manifest["stages"]["warp-fine"]["init"] == release
    tt = SieveNetStage(_config(tmp_path / "tt", stage="tt", init=str(tmp_path / "partial")))
    assert all(torch.equal(tt.model.state_dict()[k], after[k]) for k in after if k.startswith("warp."))


def test_warp_fine_can_start_from_a_copy_of_the_coarse_stage(tmp_path):
    from sievenet.models import SieveNet

    release = tiny_release(tmp_path / "release", stages=("warp",))
    model = SieveNet.from_pretrained(release)
    with torch.no_grad():  # a "trained" coarse regressor: not the zero init
        model.warp.coarse.regressor.fc.weight.normal_(0, 0.01)
    model.save_pretrained(release, manifest={"stages": {"warp": {"steps": 1}}})
    stage = SieveNetStage(_config(tmp_path, stage="warp-fine", init=release, fine_init="coarse"))
    coarse, fine = stage.model.warp.coarse.state_dict(), stage.model.warp.fine.state_dict()
    for key in coarse:
        if key.startswith("regressor.fc."):
            assert not fine[key].any()  # the copy starts as the identity correction
        else:
            assert torch.equal(fine[key], coarse[key])
    assert any(coarse[k].any() for k in coarse if k.startswith("regressor.fc."))  # the release's is not zero
    dataset, collate = build_dataset(stage.config)
    batch = collate([dataset[i] for i in range(2)])
    w = stage.model.warp(batch["priors"], batch["cloth"])
    assert torch.equal(w.warped_fine, w.warped_coarse)
    with pytest.raises(ValueError, match="fine_init must be"):
        _config(tmp_path, stage="warp-fine", init=release, fine_init="copy")
    with pytest.raises(ValueError, match="only applies to stage warp-fine"):
        _config(tmp_path, stage="warp", fine_init="coarse")


def test_warp_fine_needs_a_trained_two_stage_warp(tmp_path):
    with pytest.raises(ValueError, match="warp-fine needs init"):
        _config(tmp_path, stage="warp-fine")
    with pytest.raises(ValueError, match="needs two warp stages"):
        _config(tmp_path, stage="warp-fine", init="x", **{"model.warp_stages": 1}, pgm=False)
    seg_only = tiny_release(tmp_path / "seg-only", stages=("seg",))
    with pytest.raises(ValueError, match=r"no trained \['warp'\]"):
        SieveNetStage(_config(tmp_path, stage="warp-fine", init=seg_only))


def test_tt_needs_trained_earlier_stages(tmp_path):
    release = tiny_release(tmp_path / "warp-only", stages=("warp",))
    with pytest.raises(ValueError, match=r"no trained \['seg'\]"):
        SieveNetStage(_config(tmp_path, stage="tt", init=release))
    with pytest.raises(ValueError, match="no weights at .*Train and export the earlier stage"):
        SieveNetStage(_config(tmp_path, stage="tt", init=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="needs init"):
        _config(tmp_path, stage="tt")


@pytest.mark.slow  # starts Python + torch twice in subprocesses
def test_sigkill_never_leaves_a_corrupt_checkpoint(tmp_path):
    config = _config(tmp_path, steps=100000, ckpt_every=1, image_every=100000, tensorboard=False)
    from sievenet.train.config import save_config

    save_config(config, tmp_path / "cfg.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ckpt = checkpoint_path(config.run_dir)
    steps_seen = []
    for delay in (0.0, 0.23):  # kill at different points of the write cycle
        proc = subprocess.Popen([sys.executable, "-m", "sievenet.train", str(tmp_path / "cfg.yaml"), "resume=true"],
                                cwd=ROOT, env=env, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        start = load_checkpoint(ckpt)["step"] if ckpt.exists() else 0
        while time.monotonic() < deadline and (
            not ckpt.exists() or load_checkpoint(ckpt)["step"] < start + 2
        ):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        steps_seen.append(load_checkpoint(ckpt)["step"])  # loads (weights_only) after every kill
    assert steps_seen == sorted(steps_seen) and steps_seen[0] >= 2
    finish = _config(tmp_path, steps=steps_seen[-1] + 1, resume=True, ckpt_every=1, tensorboard=False)
    assert train(finish)["step"] == steps_seen[-1] + 1 and load_checkpoint(ckpt)["step"] == steps_seen[-1] + 1


# ---- DDP ----------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    config = _config(Path(tmp), stage="warp", steps=3, image_every=100, tensorboard=False, device="cpu")
    stage = _train(config)
    torch.save(stage.model.state_dict(), Path(tmp) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # spawns two torch processes
def test_ddp_two_cpu_ranks_stay_identical(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    torch.manual_seed(0)
    fresh = SieveNetStage(_config(tmp_path, stage="warp")).model.state_dict()
    assert any(not torch.equal(fresh[k], r0[k]) for k in r0 if k.startswith("warp."))
    assert load_checkpoint(checkpoint_path(tmp_path / "run"))["info"]["world_size"] == 2


@pytest.mark.slow  # runs the real script: three stages, three exports, one evaluation, in subprocesses
def test_reproduce_script_chains_the_stages(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "final"), "PARTIAL": str(tmp_path / "partial"),
           "RUNS": str(tmp_path / "runs"), "EVAL_N": "2", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "EVAL_STUDIOS": "2d", "PHOTO_N": "0", "EVAL_PANEL": "0"}  # fmt: skip
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
        decay = ["lr_decay_from=1"] if stage == "warp-fine" else []  # the YAML's 4500 is past steps=2
        done = subprocess.run(
            ["bash", str(script), stage, *tiny, *decay], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert (tmp_path / ("final" if stage == "tt" else "partial") / "manifest.json").exists()
    done = subprocess.run(["bash", str(script), "eval"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "final" / "manifest.json").read_text())
    assert manifest["trained_stages"] == ["warp", "seg", "warp-fine", "tt"]
    assert manifest["metrics"]["n"] == 2 and "unpaired_ssim" in manifest["metrics"]["2d"]
    assert json.loads((tmp_path / "partial" / "manifest.json").read_text())["trained_stages"] == [
        "warp",
        "seg",
        "warp-fine",
    ]
    from sievenet.models import SieveNet

    SieveNet.from_pretrained(tmp_path / "final")


def test_export_with_eval_records_the_same_summary_as_eval_record(tmp_path):
    import json

    from sievenet.export import main as export_main
    from sievenet.models import SieveNet

    config = _config(tmp_path, steps=1, image_every=100, tensorboard=False)
    _train(config)
    out = tmp_path / "release"
    assert export_main([str(config.run_dir), "--out", str(out), "--eval-n", "2", "--eval-studio", "2d"]) == 0
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    saved = json.loads((out / "eval" / "eval.json").read_text())
    assert (
        metrics == saved["summary"] and "2d" in metrics and "3d" not in metrics
    )  # as `sievenet.eval --record`
    SieveNet.from_pretrained(out)  # the manifest still verifies
