"""Loader processes: how a dataset that renders with OpenGL starts its workers."""

from __future__ import annotations

import contextlib
import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def one_thread_children():
    """Processes spawned inside start with one BLAS/OpenMP thread: a render process is one core's work, and a
    BLAS pool's idle threads spin on the core the other process renders on (two processes: 27 -> 29 samples/s
    at 256x192, `python -m sievenet.synthetic bench --studio 3d`)."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def needs_spawn(dataset) -> bool:
    """Whether `dataset` renders with OpenGL (the 3D studio on the fly): its loader workers must be spawned, not
    forked — a fork of a process that has rendered or built the body model hangs its first sample."""
    return bool(getattr(dataset, "renders_3d", False))
