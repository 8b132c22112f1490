"""SieveNet Studio's try-on inspector: `python app.py` serves it on http://127.0.0.1:7860 (also a HF Space)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys

# Before gradio is imported: it reads this at import time. No usage statistics leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from demo import CONCURRENCY_LIMIT, LAUNCH_SETTINGS, QUEUE_SIZE, create_demo, load_pipeline, warm_up  # noqa: E402
from demo.ui import local_weights_allowed  # noqa: E402
from sievenet.errors import WeightsError  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0; locally the app stays private to this machine.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--weights",
        default=None,
        help="release folder or hf://org/repo (default: the shipped weights/sievenet-s)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        pipeline, banner = load_pipeline(args.weights, device=args.device)
    except WeightsError as exc:
        sys.exit(f"app.py: {exc}")
    warm_up(pipeline)
    # Reachable from other machines (a non-local host, or a --share link): the weights box takes hf:// ids
    # only, unless the operator sets SIEVENET_LOCAL_WEIGHTS=1.
    allow_local = local_weights_allowed("0.0.0.0" if args.share else args.host)
    demo = create_demo(pipeline, banner=banner, allow_local_weights=allow_local)
    # The `tryon` endpoint is also an MCP tool where Gradio's optional extra is installed (gradio[mcp]).
    mcp = importlib.util.find_spec("mcp") is not None
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE).launch(
        server_name=args.host, server_port=args.port, share=args.share, mcp_server=mcp, **LAUNCH_SETTINGS
    )


if __name__ == "__main__":
    main()
