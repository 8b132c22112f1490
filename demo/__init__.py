"""The Gradio try-on inspector: `create_demo(pipeline) -> gr.Blocks` and the helpers app.py needs."""

from demo.loading import load_pipeline, warm_up
from demo.ui import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, QUEUE_SIZE, create_demo

__all__ = ["CONCURRENCY_LIMIT", "LAUNCH_SETTINGS", "QUEUE_SIZE", "create_demo", "load_pipeline", "warm_up"]
