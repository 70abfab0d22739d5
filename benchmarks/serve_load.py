"""Bounded load on `hnn serve` (loopback only): /v1/check latency and throughput beside the CLI's `hnn check`.

    .venv/bin/python benchmarks/serve_load.py [--requests 12,24,64] [--clients 1,4,16] [--cli-runs 5] [--json OUT]

Builds a resnet18 ONNX file (torchvision, seeded weights) and a small index that holds it
among three other models, starts `hnn serve` on a free 127.0.0.1 port with its defaults
(one conversion per core, four waiting per conversion), and in the same run:

* times `hnn check INDEX resnet18.onnx` end to end, ``--cli-runs`` times (what a platform
  pays per upload when it shells out: process start, imports, checkpoint, conversion);
* after two warm-up requests, for each client count, sends a fixed number of requests
  (``--requests``, one per client count) from that many threads, each uploading the file to
  POST /v1/check. A 429 (every conversion slot and waiting place taken) is counted apart
  and retried after its Retry-After, as a well-behaved client does; anything else that is
  not a 200 with the CLI's verdict counts as an error.

Prints, per client count: p50 and p99 latency of the answered requests, throughput, and
the counts; then the warm p50 at one client as a share of the CLI's median. The server
is stopped with SIGTERM at the end, and the script checks it exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HNN = str(Path(sys.executable).with_name("hnn"))


def build_models(folder: Path) -> dict[str, Path]:
    import onnx
    import torch
    import torchvision

    from hnn.plugins.frontends.pytorch_frontend import export_module

    files = {}
    for name, seed in (("resnet18", 0), ("resnet34", 1), ("mobilenet_v2", 2), ("squeezenet1_1", 3)):
        torch.manual_seed(seed)
        files[name] = folder / f"{name}.onnx"
        onnx.save(export_module(getattr(torchvision.models, name)(), [1, 3, 224, 224]), str(files[name]))
    return files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def load(base: str, model: Path, clients: int, requests: int, verdict: str) -> dict:
    data = model.read_bytes()
    latencies, counts, lock = [], {"ok": 0, "busy_429": 0, "errors": 0}, threading.Lock()
    errors: list[str] = []
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]

    def client(share: int) -> None:
        with httpx.Client(timeout=600) as http:
            for _ in range(share):
                while True:
                    started = time.perf_counter()
                    try:
                        response = http.post(base + "/v1/check", files={"file": (model.name, data)})
                    except httpx.TransportError as exc:
                        with lock:
                            counts["errors"] += 1
                            errors.append(f"{type(exc).__name__}: {exc}")
                        break
                    elapsed = time.perf_counter() - started
                    if response.status_code == 429:
                        with lock:
                            counts["busy_429"] += 1
                        time.sleep(float(response.headers.get("retry-after", 1)))
                        continue
                    with lock:
                        if response.status_code == 200 and response.json().get("verdict") == verdict:
                            counts["ok"] += 1
                            latencies.append(elapsed)
                        else:
                            counts["errors"] += 1
                            errors.append(f"{response.status_code}: {response.text[:200]}")
                    break

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(share,)) for share in shares if share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": requests, **counts, "wall_s": wall, "error_kinds": sorted(set(errors)),
            "p50_s": statistics.median(latencies) if latencies else None,
            "p99_s": percentile(latencies, 0.99) if latencies else None,
            "throughput_per_s": counts["ok"] / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", default="12,24,64", help="requests per client count")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    requests = [int(r) for r in args.requests.split(",")]
    with tempfile.TemporaryDirectory(prefix="hnn-serve-load-") as scratch:
        folder = Path(scratch)
        print("building models ...", file=sys.stderr)
        files = build_models(folder)
        index = folder / "models.db"
        subprocess.run([HNN, "index", "add", str(index), *map(str, files.values())], check=True,
                       capture_output=True)
        model = files["resnet18"]
        model_bytes = model.stat().st_size  # the folder is gone by the time the table is printed
        cli = []
        for _ in range(args.cli_runs):
            started = time.perf_counter()
            result = subprocess.run([HNN, "check", str(index), str(model), "--json"], capture_output=True, text=True,
                                    check=False)  # exit 4: derived
            cli.append(time.perf_counter() - started)
        verdict = json.loads(result.stdout)["verdict"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(folder / "serve.log", "wb")
        server = subprocess.Popen([HNN, "serve", str(index), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the service did not start: " + (folder / "serve.log").read_text())
                    time.sleep(0.2)
            health = httpx.get(base + "/healthz").json()
            load(base, model, 1, 2, verdict)  # warm-up
            rows = [load(base, model, count, total, verdict) for count, total in zip(clients, requests)]
        finally:
            server.send_signal(signal.SIGTERM)
            exit_code = server.wait(120)
            log.close()
    cli_median = statistics.median(cli)
    print(f"model: resnet18 ONNX ({model_bytes} bytes); verdict {verdict}; "
          f"service: {health['conversions']['limit']} conversions at once, {health['conversions']['max_waiting']} "
          f"waiting; {os.cpu_count()} cores")
    print(f"CLI `hnn check`: median {cli_median:.3f} s of {len(cli)} runs ({', '.join(f'{t:.2f}' for t in cli)})")
    print(f"{'clients':>7} {'requests':>8} {'ok':>4} {'429':>5} {'errors':>6} {'p50 s':>7} {'p99 s':>7} {'req/s':>6}")
    for row in rows:
        print(f"{row['clients']:>7} {row['requests']:>8} {row['ok']:>4} {row['busy_429']:>5} {row['errors']:>6} "
              f"{row['p50_s'] or float('nan'):>7.3f} {row['p99_s'] or float('nan'):>7.3f} "
              f"{row['throughput_per_s']:>6.2f}")
        for kind in row["error_kinds"]:
            print(f"        error: {kind}")
    one = next((row for row in rows if row["clients"] == 1), None)
    if one and one["p50_s"]:
        print(f"warm p50 at 1 client / CLI median: {one['p50_s'] / cli_median:.2f} (goal <= 0.33)")
    print(f"server exit code after SIGTERM: {exit_code}")
    if args.json:
        args.json.write_text(json.dumps({"cli_s": cli, "cli_median_s": cli_median, "rows": rows,
                                         "service": health["conversions"], "exit_code": exit_code}, indent=1))


if __name__ == "__main__":
    main()
