"""Benchmark the app as a user meets it: start `python app.py`, time try-ons through the API, watch its memory.

    python -m demo.bench                      # example pair, 20 requests, prints a table
    python -m demo.bench --weights weights/sievenet-s --requests 40
    python -m demo.bench --requests 0 --load   # + bursts of 8/16/80 at once, 100 in a row, the costliest photo

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
    parser.add_argument(
        "--load",
        action="store_true",
        help="also: bursts of --bursts requests sent at once, --sequential in a row, and the costliest photo "
        "the bounds still accept (a 6320x6320 RGBA PNG) beside a normal request",
    )
    parser.add_argument("--bursts", default="8,16,80", help="burst sizes for --load")
    parser.add_argument("--sequential", type=int, default=100, help="requests in a row for --load")
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
        # gradio_client sends at most max_workers requests at a time: a burst must really arrive at once.
        bursts = [int(b) for b in args.bursts.split(",") if b] if args.load else []
        workers = max([40, *(b + 2 for b in bursts)])
        client = Client(
            url, verbose=False, analytics_enabled=False, download_files=False, max_workers=workers
        )
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
        load = load_figures(client, app.pid, person, garment, args) if args.load else None
    finally:
        app.terminate()
        app.wait(timeout=30)

    print(f"person {person}\ngarment {garment}\ncpu cores {os.cpu_count()}, app.py {' '.join(command[2:])}\n")
    print(f"{'request':>8} {'latency ms':>11} {'server ms':>10} {'RSS MiB':>8}")
    print(f"{'idle':>8} {'':>11} {'':>10} {rss_idle:8.0f}")
    for i, latency, handler, rss in rows:
        print(f"{'warm-up' if i == 0 else i:>8} {latency:11.0f} {handler:10.0f} {rss:8.0f}")
    timed = rows[1:]
    print()
    if timed:
        first5 = [r[1] for r in timed[:5]]
        print(f"median latency, requests 1-5:   {statistics.median(first5):.0f} ms")
        print(f"median latency, all {len(timed)}:       {statistics.median(r[1] for r in timed):.0f} ms")
        print(f"median server time, all {len(timed)}:   {statistics.median(r[2] for r in timed):.0f} ms")
        print(f"RSS after request 1 / {len(timed)}:    {timed[0][3]:.0f} / {timed[-1][3]:.0f} MiB")
    print(f"peak RSS (VmHWM):               {peak:.0f} MiB")
    if blocked:
        backend, (refused_ms, error), second_ms = blocked
        print(f"unavailable backend {backend}: refused after {refused_ms:.0f} ms ({error});")
        print(f"  a normal request sent at the same time finished after {second_ms:.0f} ms")
    if load:
        print("\n" + load)


def pixel_bomb(path: Path, side: int = 6320) -> Path:
    """A small PNG (well under the upload limit) with nearly as many pixels as the 40 MP guard lets through."""
    import numpy as np
    import PIL.Image

    image = np.full((side, side, 4), 255, np.uint8)
    # A flat blob compresses well: the file is small, the decode is not.
    image[side // 4 : 3 * side // 4, side // 3 : 2 * side // 3, :3] = (200, 80, 60)
    PIL.Image.fromarray(image, "RGBA").save(path, optimize=True)
    return path


def load_figures(client, pid: int, person: str, garment: str, args) -> str:
    """Bursts sent at once, requests in a row, and the costliest accepted photo: a table as text."""
    import tempfile

    from gradio_client import handle_file

    def one(**overrides):
        files = {"person": handle_file(person), "garment": handle_file(garment)} | overrides
        return client.submit(**files, api_name="/tryon")

    def wait(job, start):
        try:
            job.result(timeout=900)
            return (time.perf_counter() - start) * 1000, "ok"
        except Exception as exc:  # refused or failed: its kind is the answer
            return (time.perf_counter() - start) * 1000, type(exc).__name__

    lines = ["| load | requests | completed | refused/failed | median ms | slowest ms | RSS after MiB |"]
    lines.append("|---|---|---|---|---|---|---|")
    for n in (int(b) for b in args.bursts.split(",") if b):
        start = time.perf_counter()
        jobs = [one() for _ in range(n)]
        done, pending = [], list(jobs)
        while pending:  # timed as each one finishes, whatever the order
            finished = [job for job in pending if job.done()]
            done += [wait(job, start) for job in finished]
            pending = [job for job in pending if job not in finished]
            time.sleep(0.05)
        ok = [ms for ms, what in done if what == "ok"]
        failed = [what for _, what in done if what != "ok"]
        kinds = [f"{failed.count(k)} {k}" for k in sorted(set(failed))]
        lines.append(
            f"| burst of {n} at once | {n} | {len(ok)} | {n - len(ok)} ({', '.join(kinds)}) | "
            f"{statistics.median(ok) if ok else float('nan'):.0f} | {max(ms for ms, _ in done):.0f} | "
            f"{memory_mib(pid)[0]:.0f} |"
        )
    rss = []
    latencies = []
    for _ in range(args.sequential):
        start = time.perf_counter()
        ms, what = wait(one(), start)
        latencies.append(ms)
        rss.append(memory_mib(pid)[0])
    if rss:
        lines.append(
            f"| {args.sequential} in a row | {args.sequential} | {len(latencies)} | 0 | "
            f"{statistics.median(latencies):.0f} | {max(latencies):.0f} | "
            f"{rss[0]:.0f} after the 1st, {rss[len(rss) // 2]:.0f} mid-way, {rss[-1]:.0f} after the last |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        bomb = pixel_bomb(Path(tmp) / "bomb.png")
        before = memory_mib(pid)[0]
        start = time.perf_counter()
        heavy = one(person=handle_file(str(bomb)))
        normal = one()
        heavy_ms, heavy_what = wait(heavy, start)
        normal_ms, _ = wait(normal, start)
        after, peak = memory_mib(pid)
        size = bomb.stat().st_size / 2**20
    lines.append(
        f"\ncostliest accepted photo ({size:.1f} MB PNG, 6320x6320 RGBA): {heavy_what} after {heavy_ms:.0f} ms, "
        f"RSS {before:.0f} -> {after:.0f} MiB (peak so far {peak:.0f}); a normal request sent with it: "
        f"{normal_ms:.0f} ms"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
