"""A model-agnostic training loop: seeded data order, atomic resumable checkpoints, TensorBoard, DDP.

Like minGPT's trainer, this file knows nothing about SieveNet. A `Stage` supplies the module to optimise,
the loss (with a dict of floats to log) and images to show; the loop does the rest:

- data order is a pure function of (seed, step, rank), so a resumed run sees exactly the batches an
  uninterrupted one would;
- checkpoints hold the stage state, optimiser, step, RNG states and the resolved config, are written to a
  temporary file and renamed over `last.pt` (a SIGKILL at any moment leaves the previous one intact), carry
  a sha256 of their contents, are read back with `torch.load(weights_only=True)` and verified; the one
  before is kept as `previous.pt`, the way back when `last.pt` is damaged;
- under `torchrun` (WORLD_SIZE > 1) the trainable module is wrapped in DistributedDataParallel (NCCL on
  GPUs, gloo on CPUs), each rank reads its own shard of every global batch, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sievenet.data.processes import needs_spawn, one_thread_children
from sievenet.errors import WeightsError
from sievenet.train.config import ConfigError, TrainConfig, lr_at, save_config

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sievenet-train-checkpoint/1"
LAST = "last.pt"
PREVIOUS = (
    "previous.pt"  # the checkpoint before last.pt, kept so a damaged last.pt costs only ckpt_every steps
)
DIGEST = "sha256"  # checkpoint key holding the sha256 of everything else in it
# What a checkpoint must hold to resume from, and the type of each.
_CHECKPOINT_KEYS = {"step": int, "stage": dict, "optimizer": dict, "rng": dict, "config": dict, "info": dict}
# Config keys a resumed run may change; everything else must match the checkpoint's config. `steps` and
# `lr_decay_from` may change only where the learning rate of the steps already done stays the same.
_RESUMABLE_CHANGES = {
    "resume",
    "run_dir",  # a run folder may be moved or copied and resumed there
    "disk_root",  # so may the pre-rendered pairs (their content is what counts: reproduce.sh v2-data, digests)
    "steps",
    "lr_decay_from",
    "log_every",
    "image_every",
    "ckpt_every",
    "num_workers",
    "device",
    "threads",
    "tensorboard",
    "progress",
}


class CheckpointError(ConfigError, WeightsError):
    """A resume checkpoint is unreadable, damaged or incomplete; the message names it and the way back.

    A ConfigError (the run cannot start as it is) and a WeightsError (damaged weights), so both the training
    command and any caller catching the project's own errors report it as a message."""


class Stage(Protocol):
    """What the loop needs from a training stage."""

    def trainable(self) -> nn.Module:
        """The module the optimiser updates (DDP wraps exactly this)."""

    def loss(self, net: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward `batch` through `net` (the trainable module, maybe DDP-wrapped); return (loss, logs)."""

    def visuals(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named (B, C, H, W) images in [0, 1] to show, computed without gradients."""

    def after_step(self, step: int) -> None:
        """Called after optimiser step `step` (0-based), e.g. to refresh a frozen copy."""

    def state_dict(self) -> dict:
        """Everything needed to resume beyond the optimiser (tensors and plain types only)."""

    def load_state_dict(self, state: dict) -> None: ...

    def info(self) -> dict:
        """Plain provenance to record in checkpoints (e.g. which perceptual backbone was loaded)."""


# ---- distributed --------------------------------------------------------------------------------------


def setup_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (if any) and pick this process's device.

    Returns:
        (rank, world_size, device). Single-process runs get (0, 1, device) and no process group.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, dev


# ---- data order ---------------------------------------------------------------------------------------


class StepBatchSampler:
    """Yields this rank's index batches for steps start..steps-1 from an endless, epoch-wise shuffled stream.

    Global sample position p = (step * world + rank) * batch_size + j; epoch p // n is a permutation seeded by
    (seed, epoch). Every batch is therefore a pure function of (seed, step, rank): resuming at step s
    continues exactly where an uninterrupted run would be.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, start: int, steps: int, rank: int, world: int):
        if n < 1:
            raise ValueError("the training dataset is empty")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.steps, self.rank, self.world = start, steps, rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {
                epoch: torch.randperm(
                    self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                )
            }
        return self._perms[epoch]

    def batch(self, step: int) -> list[int]:
        first = (step * self.world + self.rank) * self.batch_size
        return [int(self._perm(p // self.n)[p % self.n]) for p in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to `device`; other values are left alone."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# ---- RNG and checkpoints ------------------------------------------------------------------------------


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as tensors and plain types (loadable with weights_only=True)."""
    # The legacy global NumPy RNG is what third-party code draws from, so it is the state worth restoring.
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state  # fmt: skip


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    os.replace is atomic on POSIX, so readers (and a process killed mid-write) see either the old complete
    file or the new complete file, never a partial one. A training checkpoint gets its content digest first.
    """
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        body = {k: v for k, v in obj.items() if k != DIGEST}
        obj = {**body, DIGEST: content_digest(body)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # make a rename durable where the OS allows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def keep_previous(path: Path) -> None:
    """Make previous.pt a copy of the current `path` (a hard link where possible) before `path` is replaced.

    last.pt itself never disappears: the link is made under a temporary name and renamed over previous.pt.
    """
    if not path.exists():
        return
    tmp = path.with_name(f".{PREVIOUS}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:  # file systems without hard links
        import shutil

        shutil.copyfile(path, tmp)
    os.replace(tmp, path.with_name(PREVIOUS))
    _sync_folder(path.parent)


def content_digest(obj: Any) -> str:
    """sha256 over a checkpoint's contents (tensors by dtype, shape and bytes; plain values by repr).

    Computed from the loaded objects, so it also catches a flipped byte torch.load reads back without noticing.
    """
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{t.dtype}{tuple(value.shape)}".encode())
            digest.update(t.view(torch.uint8).numpy())
        elif isinstance(value, dict):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                feed(value[key])
        elif isinstance(value, list | tuple):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                feed(item)
        else:
            digest.update(f"V{value!r}".encode())

    feed(obj)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and verify a training checkpoint without unpickling arbitrary objects (weights_only=True).

    Raises:
        CheckpointError: unreadable (empty, truncated, not a checkpoint), damaged (digest mismatch) or missing a
            key; the message names the file and what to do.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch/zip/pickle report damage with many types; all mean "unreadable"
        reason = "it is empty" if path.stat().st_size == 0 else f"it is unreadable ({type(exc).__name__})"
        raise CheckpointError(_damaged(path, reason)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            _damaged(path, f"it is not a SieveNet training checkpoint ({CHECKPOINT_FORMAT})")
        )
    stored = ckpt.pop(DIGEST, None)
    if stored is None:
        log.warning("%s was written before checkpoints carried a checksum; it cannot be verified", path)
    elif stored != content_digest(ckpt):
        raise CheckpointError(_damaged(path, "its contents do not match the checksum stored in it"))
    for key, kind in _CHECKPOINT_KEYS.items():
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(_damaged(path, f"it has no {key!r} ({kind.__name__})"))
    return ckpt


def _damaged(path: Path, reason: str) -> str:
    """The message for a checkpoint that cannot be used: what is wrong, and the way back."""
    previous = path.with_name(PREVIOUS)
    if path.name != PREVIOUS and previous.is_file():
        fix = (
            f"resume from the checkpoint before it, kept at {previous}: replace the damaged file with it "
            f"(mv {previous} {path}) and run again with resume=true (the steps since it are redone)"
        )
    else:
        fix = f"no earlier checkpoint is kept; delete {path} to restart this run from step 0, or use a new run_dir"
    return f"cannot resume from {path}: {reason}; {fix}"


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints" / LAST


def _check_resumable(saved: dict, config: TrainConfig, path: Path, done: int) -> None:
    current = config.to_dict()
    # Extending a run (more steps, a decay that starts later) is fine; rewriting the lr of its past is not.
    old_lr = (saved.get("lr"), saved.get("lr_decay_from"), saved.get("steps"))
    past_lr_changed = any(lr_at(s, *old_lr) != config.lr_at(s) for s in range(done))
    fixed = {
        k
        for k in current
        if k not in _RESUMABLE_CHANGES or (past_lr_changed and k in ("steps", "lr_decay_from"))
    }
    # The duelling triplet's start may move while neither start has reached the steps done (their loss is the
    # same): a run copied at step K and resumed with triplet_after=null is the triplet's exact control.
    if _starts_after(saved.get("triplet_after"), done) and _starts_after(current["triplet_after"], done):
        fixed.discard("triplet_after")
    changed = sorted(k for k in fixed if saved.get(k) != current[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume {path}: the config changed ({diffs}); use the saved config "
            f"({path.parent.parent / 'config.yaml'}) or start a new run_dir"
        )


def _starts_after(step: int | None, done: int) -> bool:
    """Whether a phase starting at 0-based step `step` (None: never) left the first `done` steps untouched."""
    return step is None or step >= done


# ---- the loop -----------------------------------------------------------------------------------------


def _image_grid(images: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    """One row per named image set: (3, rows*H, B*W) in [0, 1] (1-channel images become grey)."""
    rows = []
    for img in images.values():
        img = img.detach().float().cpu().clamp(0, 1)
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        rows.append(torch.cat(list(img), dim=-1))  # (3, H, B*W)
    return list(images), torch.cat(rows, dim=-2)


def fit(
    stage: Stage,
    dataset: Dataset,
    config: TrainConfig,
    *,
    collate_fn: Callable[[Sequence], Any] | None = None,
    device: torch.device | None = None,
    command: Sequence[str] | None = None,
) -> dict:
    """Train `stage` on `dataset` for config.steps optimiser steps; resume if config.resume.

    Args:
        stage: supplies the trainable module, loss, visuals and extra state.
        dataset: map-style dataset; sample i must be a pure function of i for resumes to be exact.
        config: the resolved run config (the loop reads only its generic fields).
        collate_fn: DataLoader collate function.
        device: where to train; default from config.device (and the torchrun local rank).
        command: the command line recorded in checkpoints (default sys.argv).

    Returns:
        {"step": steps done, "logs": the last logged values, "checkpoint": path or None (non-zero ranks)}.
    """
    rank, world, auto_device = setup_distributed(config.device)
    device = device or auto_device
    if config.threads and device.type == "cpu":
        torch.set_num_threads(config.threads)
    run_dir = Path(config.run_dir)
    ckpt_file = checkpoint_path(run_dir)
    is_main = rank == 0

    module = stage.trainable().to(device)
    optimiser = torch.optim.Adam(
        [p for p in module.parameters() if p.requires_grad], lr=config.lr, betas=config.betas
    )
    start = 0
    if ckpt_file.exists():
        if not config.resume:
            raise FileExistsError(
                f"{ckpt_file} already exists; pass resume=true to continue that run or choose another run_dir"
            )
        ckpt = load_checkpoint(ckpt_file)
        _check_resumable(ckpt["config"], config, ckpt_file, ckpt["step"])
        try:
            stage.load_state_dict(ckpt["stage"])
            optimiser.load_state_dict(ckpt["optimizer"])
            set_rng_state(ckpt["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
            raise CheckpointError(_damaged(ckpt_file, f"its state does not fit this run ({exc})")) from None
        start = ckpt["step"]
        if is_main:
            log.info("resuming %s at step %d", ckpt_file, start)
    else:
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)  # noqa: NPY002
        random.seed(config.seed)
        if config.resume and is_main:
            log.info("resume=true but %s does not exist yet: starting from step 0", ckpt_file)

    net: nn.Module = module
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )

    sampler = StepBatchSampler(
        len(dataset),
        config.batch_size,
        seed=config.seed,
        start=start,
        steps=config.steps,
        rank=rank,
        world=world,
    )
    spawn = config.num_workers > 0 and needs_spawn(dataset)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        multiprocessing_context="spawn" if spawn else None,
    )
    visual_batch = None
    writer = None
    if is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        for stale in (run_dir / "checkpoints").glob(".*.tmp"):  # left by a killed writer or linker
            stale.unlink(missing_ok=True)
        n_vis = min(4, len(dataset))
        collate = collate_fn or torch.utils.data.default_collate
        visual_batch = to_device(collate([dataset[i] for i in range(n_vis)]), device)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"))
    command = list(command if command is not None else sys.argv)

    def save(step: int) -> None:
        keep_previous(ckpt_file)
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "stage": stage.state_dict(),
                "optimizer": optimiser.state_dict(),
                "rng": rng_state(),
                "config": config.to_dict(),
                "info": {**stage.info(), "world_size": world, "command": command},
            },
            ckpt_file,
        )

    bar = None
    if is_main and config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start, desc=f"{config.stage}", unit="step", dynamic_ncols=True)
    window: dict[str, list[float]] = {}
    last_logs: dict[str, float] = {}
    module.train()
    done = start
    t0 = time.perf_counter()
    with one_thread_children() if spawn else contextlib.nullcontext():
        batches = iter(loader)  # starts the workers
    for step, batch in enumerate(batches, start=start):
        batch = to_device(batch, device)
        loss, logs = stage.loss(net, batch, step)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        for group in optimiser.param_groups:
            group["lr"] = config.lr_at(step)
        optimiser.step()
        stage.after_step(step)
        done = step + 1
        for k, v in logs.items():
            window.setdefault(k, []).append(float(v))
        if is_main:
            if done % config.log_every == 0 or done == config.steps:
                last_logs = {k: sum(v) / len(v) for k, v in window.items()}
                window.clear()
                elapsed = time.perf_counter() - t0
                last_logs["sec_per_step"] = elapsed / (done - start)
                if config.lr_decay_from is not None:
                    last_logs["lr"] = config.lr_at(step)
                if writer:
                    for k, v in last_logs.items():
                        writer.add_scalar(f"{config.stage}/{k}", v, done)
                if bar is None:  # no progress bar (logs, batch jobs): one line per logging interval
                    eta = (config.steps - done) * last_logs["sec_per_step"]
                    values = " ".join(f"{k}={v:.4g}" for k, v in last_logs.items())
                    log.info("%s step %d/%d %s eta %.0fs", config.stage, done, config.steps, values, eta)
                else:
                    bar.set_postfix(
                        {k: f"{v:.4g}" for k, v in last_logs.items() if k.startswith("l")}, refresh=False
                    )
            if done % config.image_every == 0 or done == config.steps:
                _write_images(stage, visual_batch, writer, run_dir, config.stage, done)
                module.train()
            if done % config.ckpt_every == 0 or done == config.steps:
                save(done)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    if writer:
        writer.close()
    if world > 1:
        # DDP syncs buffers (BatchNorm statistics) at the start of each forward, so after the last step each
        # rank still holds its own; take rank 0's so every process ends with the model rank 0 saved.
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
        dist.barrier()
    return {"step": done, "logs": last_logs, "checkpoint": ckpt_file if is_main else None}


def _write_images(stage: Stage, batch: dict, writer, run_dir: Path, tag: str, step: int) -> None:
    from PIL import Image

    images = stage.visuals(batch)
    names, grid = _image_grid(images)
    if writer:
        for name, img in images.items():
            from torchvision.utils import make_grid

            img = img.detach().float().cpu().clamp(0, 1)
            writer.add_image(f"{tag}/{name}", make_grid(img, nrow=img.shape[0]), step)
    out = run_dir / "images"
    out.mkdir(exist_ok=True)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(out / f"step{step:07d}.png")
    (out / "rows.txt").write_text("\n".join(names) + "\n")
