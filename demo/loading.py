"""Build the app's one pipeline: the shipped weights, or an untrained model with a banner when they are missing."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sievenet.models import SieveNet
from sievenet.pipeline import DEFAULT_WEIGHTS, TryOnPipeline

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_WEIGHTS = ROOT / DEFAULT_WEIGHTS
UNTRAINED_BANNER = (
    "**These weights are untrained.** No trained release was found at `{path}`, so the app runs a freshly "
    "initialised `sievenet-s`: every stage is computed and shown, but the try-on itself is meaningless. "
    "Train one (`python -m sievenet.train`) or start with `--weights <release folder | hf://org/repo>`."
)


def load_pipeline(weights: str | None = None, device: str = "cpu") -> tuple[TryOnPipeline, str | None]:
    """Load the pipeline the app serves, once.

    Args:
        weights: a release folder, its .safetensors file or "hf://org/repo"; None means the shipped
            `weights/sievenet-s`, falling back to an untrained `sievenet-s` when that folder is missing.
        device: torch device, e.g. "cpu" or "cuda".

    Returns:
        The pipeline, and a banner to show in the UI (None when the weights are a real release).

    Raises:
        WeightsError: explicitly named weights are missing or invalid (an explicit choice never falls back).
    """
    if weights is not None:
        return TryOnPipeline.from_pretrained(weights, device=device), None
    if (SHIPPED_WEIGHTS / "manifest.json").is_file():
        return TryOnPipeline.from_pretrained(str(SHIPPED_WEIGHTS), device=device), None
    banner = UNTRAINED_BANNER.format(path=DEFAULT_WEIGHTS)
    log.warning(
        "no trained weights at %s: serving an UNTRAINED sievenet-s (outputs are meaningless)", SHIPPED_WEIGHTS
    )
    return TryOnPipeline(SieveNet.from_config("sievenet-s"), device=device), banner


def warm_up(pipeline: TryOnPipeline, examples_dir: Path = ROOT / "assets" / "examples") -> None:
    """Run one try-on of the first example pair, so the first visitor does not pay for model start-up.

    The pose and mask models are built on first use and their first call is several times slower than the
    next; a failure here is logged and never stops the app from starting.
    """
    persons = sorted((examples_dir / "persons").glob("*.png"))
    garments = sorted((examples_dir / "garments").glob("*.png"))
    if not persons or not garments:
        log.info("no example pair in %s; skipping the warm-up try-on", examples_dir)
        return
    start = time.perf_counter()
    try:
        pipeline(persons[0], garments[0])
    except Exception as exc:  # start-up must not depend on one example photo
        log.warning("warm-up try-on on %s failed (%s: %s)", persons[0].name, type(exc).__name__, exc)
        return
    log.info("warm-up try-on took %.0f ms", (time.perf_counter() - start) * 1000)
