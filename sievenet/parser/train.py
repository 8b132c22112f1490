"""Train, export and evaluate the learned parser.

Checkpoints use the training loop's format and helpers (sievenet.train.loop): written atomically with a
sha256 of their contents, the previous one kept, read back with weights_only=True and verified.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sievenet.labels import NUM_CLASSES, SKIN, TT_KEPT, Label
from sievenet.parser.data import Shards, batch
from sievenet.parser.model import CONFIGS, ParserConfig, ParserNet
from sievenet.train.loop import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    keep_previous,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)

WARMUP = 100
LEAK_WEIGHT = 1.0


def class_weights() -> torch.Tensor:
    """Cross-entropy weights: 1.5 on skin, as the model's segmentation loss has (DESIGN §6)."""
    w = torch.ones(NUM_CLASSES)
    for label in SKIN:
        w[int(label)] = 1.5
    return w


def leak_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean probability of the texture-prior classes (hair, face, lower) on true upper-garment pixels.

    The two errors at a hem are not alike: garment called lower body is copied into the texture-translation
    priors and passed through (the leak), lower body called garment is only regenerated. This term makes the
    first one cost more.
    """
    upper = target == Label.UPPER
    if not upper.any():
        return logits.sum() * 0.0
    kept = logits.softmax(1)[:, [int(k) for k in TT_KEPT]].sum(1)  # (B, H, W)
    return kept[upper].mean()


def learning_rate(step: int, steps: int, lr: float) -> float:
    if step < WARMUP:
        return lr * (step + 1) / WARMUP
    t = (step - WARMUP) / max(steps - WARMUP, 1)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(
    run_dir: str | Path,
    data: list[str],
    *,
    model: str = "parser-s",
    steps: int = 3000,
    batch_size: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    leak_weight: float = LEAK_WEIGHT,
    ckpt_every: int = 100,
    log_every: int = 25,
    command: list[str] | None = None,
) -> Path:
    """Train (or resume, when run_dir holds a checkpoint with the same settings) and return the checkpoint file."""
    run = Path(run_dir)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    settings = {"model": model, "data": [str(d) for d in data], "batch_size": batch_size, "lr": lr, "seed": seed,
                "leak_weight": leak_weight, "steps": steps}  # fmt: skip
    config = CONFIGS[model]
    net = ParserNet(config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    ckpt_file = checkpoint_path(run)
    start = 0
    info = {
        "command": list(command if command is not None else sys.argv),
        "seconds": 0.0,
        "commit": _commit(),
    }
    if ckpt_file.exists():
        ckpt = load_checkpoint(ckpt_file)
        saved = {k: v for k, v in ckpt["config"].items() if k != "steps"}
        if saved != {k: v for k, v in settings.items() if k != "steps"}:
            raise SystemExit(
                f"{ckpt_file} was trained with {ckpt['config']}, not {settings}; use another run dir"
            )
        net.load_state_dict(ckpt["stage"]["model"], strict=True)
        optimiser.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
        info["seconds"] = float(ckpt["info"].get("seconds", 0.0))
        info["resumed_from"] = start
        print(f"resumed {run} at step {start}", flush=True)
    shards = Shards(data)
    weights = class_weights()
    log = open(run / "train.log", "a")  # noqa: SIM115
    began = time.perf_counter() - info["seconds"]
    window: list[float] = []

    def save(step: int) -> None:
        info["seconds"] = time.perf_counter() - began
        keep_previous(ckpt_file)
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "stage": {"model": net.state_dict()},
                "optimizer": optimiser.state_dict(),
                "rng": rng_state(),
                "config": settings,
                "info": {**info, "parser_config": config.to_dict(), "scenes": len(shards)},
            },
            ckpt_file,
        )

    net.train()
    for step in range(start, steps):
        x, y = batch(shards, config, batch_size, seed, step)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        logits = net(torch.from_numpy(x))
        target = torch.from_numpy(y)
        loss = F.cross_entropy(logits, target, weight=weights) + leak_weight * leak_loss(logits, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - began
            line = f"step {step + 1}/{steps} loss {np.mean(window):.4f} lr {learning_rate(step, steps, lr):.2e} elapsed {elapsed:.0f}s"
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
            window = []
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            save(step + 1)
    log.close()
    return ckpt_file


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export(
    run_dir: str | Path, out: str | Path, *, manifest: dict | None = None, command: list[str] | None = None
) -> Path:
    """Write the release of a finished run (weights/parser-s)."""
    ckpt = load_checkpoint(checkpoint_path(run_dir))
    config = ParserConfig.from_dict(ckpt["info"]["parser_config"])
    net = ParserNet(config)
    net.load_state_dict(ckpt["stage"]["model"], strict=True)
    info = ckpt["info"]
    record = {
        "steps": int(ckpt["step"]),
        "training": ckpt["config"],
        "train_seconds": round(float(info.get("seconds", 0.0))),
        "scenes": info.get("scenes"),
        "code_commit": info.get("commit"),
        "train_command": shlex.join(info.get("command", [])),
        "export_command": shlex.join(
            command or ["python", "-m", "sievenet.parser", "export", str(run_dir), "--out", str(out)]
        ),
        **(manifest or {}),
    }
    return net.save_pretrained(out, manifest=record)


# ---- evaluation ----------------------------------------------------------------------------------------


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(8, 8) counts, rows = truth, columns = prediction."""
    idx = truth.astype(np.int64).ravel() * NUM_CLASSES + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def iou_table(conf: np.ndarray) -> dict[str, float]:
    """Per-class IoU (NaN-free: classes absent from truth and prediction are left out) and their mean."""
    out = {}
    for label in Label:
        k = int(label)
        union = conf[k, :].sum() + conf[:, k].sum() - conf[k, k]
        if union > 0:
            out[label.name.lower()] = float(conf[k, k] / union)
    out["mIoU"] = float(np.mean([v for v in out.values()]))
    return out


def leak(pred: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true upper-garment pixels that a parse puts in the texture-translation priors."""
    upper = truth == Label.UPPER
    return float((upper & np.isin(pred, [int(k) for k in TT_KEPT])).sum() / max(int(upper.sum()), 1))


def evaluate(
    data: list[str], parsers: dict, *, size: tuple[int, int] = (512, 384), limit: int | None = None
) -> dict:
    """Run the photo path on rendered test scenes and score each parser against the studio's labels.

    Each scene is handed to the Preprocessor as a photo: mediapipe pose and mask, `frame` at `size`, then each
    parser labels that crop; the truth is cropped with the same box. Scenes mediapipe refuses are counted.
    """
    from sievenet.errors import TryOnError
    from sievenet.preprocess.framing import check_framing, crop
    from sievenet.preprocess.person import Preprocessor

    shards = Shards(data)
    pre = Preprocessor(parser="heuristic")
    confs = {name: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for name in parsers}
    leaks: dict[str, list[float]] = {name: [] for name in parsers}
    ms: dict[str, list[float]] = {name: [] for name in parsers}
    refused = 0
    n = len(shards) if limit is None else min(limit, len(shards))
    for i in range(n):
        sample = shards[i]
        rgb = sample["image"]
        try:
            found = pre.pose(rgb)
            soft = pre.person_mask(rgb, found)
            check_framing(found.keypoints, soft, size)
            framed = pre.frame(rgb, found.keypoints, soft, size)
        except TryOnError:
            refused += 1
            continue
        truth = crop(sample["label"], framed.box, size, fill=0, nearest=True)
        face = pre.face_box(framed.image, framed.keypoints)
        for name, parse in parsers.items():
            t = time.perf_counter()
            pred = parse(framed.image, framed.mask, framed.keypoints, face)
            ms[name].append((time.perf_counter() - t) * 1e3)
            confs[name] += confusion(pred, truth)
            leaks[name].append(leak(pred, truth))
    return {
        "scenes": n,
        "refused_by_pose": refused,
        "size": list(size),
        "parsers": {
            name: {
                **iou_table(confs[name]),
                "leak": float(np.mean(leaks[name])) if leaks[name] else 0.0,
                "ms_median": float(np.median(ms[name])) if ms[name] else 0.0,
            }  # fmt: skip
            for name in parsers
        },
    }


def markdown(results: dict[str, dict]) -> str:
    """results: {dataset name: evaluate() output} -> a markdown table per dataset."""
    lines = []
    for dataset, res in results.items():
        names = list(res["parsers"])
        classes = [label.name.lower() for label in Label] + ["mIoU", "leak", "ms_median"]
        lines.append(f"### {dataset}: {res['scenes'] - res['refused_by_pose']} scenes scored "
                     f"({res['refused_by_pose']} refused by the pose/framing step), crops {res['size'][0]}x{res['size'][1]}\n")  # fmt: skip
        lines.append("| class | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for c in classes:
            cells = []
            for name in names:
                v = res["parsers"][name].get(c)
                cells.append("-" if v is None else (f"{v:.1f}" if c == "ms_median" else f"{v:.3f}"))
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_json(path: str | Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def heuristic_parse(image, mask, keypoints, face):
    from sievenet.preprocess.parsing import parse_person

    return parse_person(mask, keypoints, face, image=image)


def evaluate_release(
    weights: str | Path | None,
    data: list[str],
    *,
    size: tuple[int, int] = (512, 384),
    limit: int | None = None,
    out: str | Path | None = None,
    record: bool = False,
    command: list[str] | None = None,
) -> dict:
    """Learned (the release) vs heuristic on each rendered test folder; prints markdown, optionally saves."""
    from sievenet.parser.infer import LearnedParser, default_parser_weights, neck_to_face

    release = Path(weights) if weights else default_parser_weights()
    learned = LearnedParser.from_pretrained(release)

    def learned_parse(image, mask, kp, face):  # as Preprocessor.frame runs it
        return neck_to_face(learned(image, mask, kp), face)

    parsers = {"heuristic": heuristic_parse, "learned": learned_parse}
    results = {Path(d).name: evaluate([d], parsers, size=size, limit=limit) for d in data}
    text = markdown(results)
    print(text)
    if out:
        write_json(out, {"results": results, "command": shlex.join(command or [])})
        Path(out).with_suffix(".md").write_text(text)
    if record:
        from sievenet.export import add_metrics

        add_metrics(release, {"eval": results, "eval_command": shlex.join(command or [])})
    return results
