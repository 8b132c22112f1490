"""Benchmark the app as a user meets it: start `python app.py`, time try-ons through the API, watch its memory.

    python -m demo.bench                      # example pair, 20 requests, prints a table
    python -m demo.bench --weights weights/sievenet-s --requests 40

"Latency" is request to final image: upload both photos, run `tryon`, download the try-on image (what a browser
does before it can show the result). The first request warms the models up and is reported separately.
Memory is the app process's resident set (VmRSS) after each request and its peak (VmHWM), read from /proc.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with code {process.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"app.py did not answer at {url} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> None:
    from demo.ui import EXAMPLES_DIR, find_examples

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--person", default=None, help="person photo (default: the first example person)")
    parser.add_argument("--garment", default=None, help="garment photo (default: the first example garment)")
    parser.add_argument(
        "--weights", default=None, help="passed to app.py --weights (default: its own default)"
    )
    parser.add_argument("--requests", type=int, default=20, help="requests after the warm-up one")
    args = parser.parse_args(argv)
    person = args.person or find_examples(EXAMPLES_DIR / "persons")[0]
    garment = args.garment or find_examples(EXAMPLES_DIR / "garments")[0]

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from gradio_client import Client, handle_file

    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
    if args.weights:
        command += ["--weights", args.weights]
    app = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, app)
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        rss_idle, _ = memory_mib(app.pid)

        rows = []
        for i in range(args.requests + 1):
            start = time.perf_counter()
            final, *_, status, _bundle = client.predict(
                person=handle_file(person), garment=handle_file(garment), api_name="/tryon"
            )
            image = httpx.get(final["url"], timeout=60)
            image.raise_for_status()
            latency = (time.perf_counter() - start) * 1000
            handler = float(re.search(r"Server time ([\d.]+) s", status).group(1)) * 1000
            rss, _ = memory_mib(app.pid)
            rows.append((i, latency, handler, rss))

        _, peak = memory_mib(app.pid)

        # A second request sent while the first asks for a backend this server cannot run: how long it waits.
        from demo.ui import backend_problems

        missing = [key for key, why in backend_problems().items() if why]
        blocked = None
        if missing:
            kind, name = missing[0].split(":")
            option = {"pose_backend": name} if kind == "pose" else {"mask_backend": name}
            start = time.perf_counter()
            first = client.submit(
                person=handle_file(person), garment=handle_file(garment), api_name="/tryon", **option
            )
            second = client.submit(
                person=handle_file(person), garment=handle_file(garment), api_name="/tryon"
            )
            try:
                first.result(timeout=120)
            except Exception as exc:  # the refusal is the expected answer
                refused = (time.perf_counter() - start) * 1000, type(exc).__name__
            second.result(timeout=300)
            blocked = (missing[0], refused, (time.perf_counter() - start) * 1000)
    finally:
        app.terminate()
        app.wait(timeout=30)

    print(f"person {person}\ngarment {garment}\ncpu cores {os.cpu_count()}, app.py {' '.join(command[2:])}\n")
    print(f"{'request':>8} {'latency ms':>11} {'server ms':>10} {'RSS MiB':>8}")
    print(f"{'idle':>8} {'':>11} {'':>10} {rss_idle:8.0f}")
    for i, latency, handler, rss in rows:
        print(f"{'warm-up' if i == 0 else i:>8} {latency:11.0f} {handler:10.0f} {rss:8.0f}")
    timed = rows[1:]
    first5 = [r[1] for r in timed[:5]]
    print()
    print(f"median latency, requests 1-5:   {statistics.median(first5):.0f} ms")
    print(f"median latency, all {len(timed)}:       {statistics.median(r[1] for r in timed):.0f} ms")
    print(f"median server time, all {len(timed)}:   {statistics.median(r[2] for r in timed):.0f} ms")
    print(f"RSS after request 1 / {len(timed)}:    {timed[0][3]:.0f} / {timed[-1][3]:.0f} MiB")
    print(f"peak RSS (VmHWM):               {peak:.0f} MiB")
    if blocked:
        backend, (refused_ms, error), second_ms = blocked
        print(f"unavailable backend {backend}: refused after {refused_ms:.0f} ms ({error});")
        print(f"  a normal request sent at the same time finished after {second_ms:.0f} ms")


if __name__ == "__main__":
    main()
