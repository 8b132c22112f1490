"""The procedural studio: catalogue-style try-on scenes with exact labels and unpaired ground truth.

`SyntheticTryOn` is the in-memory dataset; `python -m sievenet.synthetic export|preview|bench` writes the
VITON-HD layout, draws a contact sheet, or measures generation speed.
"""

from sievenet.synthetic.dataset import SyntheticTryOn
from sievenet.synthetic.params import GarmentParams, PersonParams, describe, draw_garment, draw_person
from sievenet.synthetic.render import Scene, render_scene

__all__ = [
    "GarmentParams",
    "PersonParams",
    "Scene",
    "SyntheticTryOn",
    "describe",
    "draw_garment",
    "draw_person",
    "render_scene",
]
