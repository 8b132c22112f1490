"""Argument types shared by the command-line entry points."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def size_type(minimum: tuple[int, int]) -> Callable[[str], tuple[int, int]]:
    """An argparse type for "HEIGHTxWIDTH" (e.g. 256x192) that refuses sizes below `minimum`."""

    def parse(text: str) -> tuple[int, int]:
        try:
            height, width = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x192, got {text!r}") from None
        if height < minimum[0] or width < minimum[1]:
            raise argparse.ArgumentTypeError(f"size must be at least {minimum[0]}x{minimum[1]}, got {text!r}")
        return height, width

    return parse
