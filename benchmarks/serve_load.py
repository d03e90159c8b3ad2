"""Load test of `imgclf serve` on loopback: throughput and latency with 16 concurrent clients vs one at a time,
for each serving backend (torch, onnx) of the same run, and optionally torch forced to fp32 (`torch-fp32`: where
the CPU has native bf16, torch serves under bf16 autocast by default).

    python -m benchmarks.serve_load                 # trains two small digits runs first (about a minute)
    python -m benchmarks.serve_load --models model_s:32 --backends torch,onnx   # issue 23's comparison
    python -m benchmarks.serve_load --run runs/x    # an existing run
    python -m benchmarks.serve_load --models model_s:32 --backends torch,torch-fp32,onnx --tag _xeon
    python -m benchmarks.serve_load --models model_s:32 --backends torch,torch-fp32,onnx,onnx-int8 --tag _epyc_bf16

`onnx-int8` serves a copy of the run whose export is `imgclf export --quantize int8` (convolutions in int8,
calibrated on the run's validation images); its agreement with the fp32 graph is recorded beside its figures.

For each run: exports it to ONNX when the onnx backend is asked (always afresh: the server refuses an export
older than the run's model.json), starts one `imgclf serve` subprocess per backend on 127.0.0.1 (free ports,
never another interface), and sends --requests requests from --concurrency clients and --sequential-requests one
at a time to each, in --rounds rounds that alternate the backends (and their order) and the two modes, so that
a change in background load hits all of them alike (every phase also stops at --time-limit seconds). It counts
5xx answers and transport errors, stops the servers, splits each backend's server CPU per request into decoding,
the forward pass (both measured in-process, every arm at one batch: the mean the servers reached) and the rest (HTTP, multipart,
batcher, JSON: the same code for both), and writes benchmarks/results/serve<--tag>.json with, per run, each backend's
figures and the onnx/torch ratios. Every request is one PNG from the run's test split, as the upload
page or `curl -F files=@x.png` sends it. Besides wall-clock figures it records the server's CPU time per
request, which other jobs on a shared machine inflate far less than latency. The load generator is aiohttp
(`pip install -e ".[bench]"`). The smoke mode serves one digits run trained for one epoch and sends a few dozen
requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from benchmarks.common import Bench, add_arguments


def make_run(bench: Bench, model: str, img_size: int, epochs: int) -> Path:
    """A digits run (the offline data set of `imgclf demo`; smoke: the generated images); accuracy does not matter
    here, only the model."""
    from imgclf.data.sources import export_digits

    data = bench.fashion_tree() if bench.smoke else bench.work / "digits"
    if not (data / ".complete").exists():
        export_digits(data)
        (data / ".complete").write_text("ok")
    trained = bench.train(data, bench.work / "runs" / f"serve-{model}-{img_size}", overwrite=True,
                          values={"model": model, "img_size": img_size, "epochs": epochs, "batch_size": 64,
                                  "lr": 3e-3, "seed": 0})
    return trained.run.path


def payloads(run: Path, count: int = 64) -> list[tuple[str, bytes]]:
    from imgclf.records import RunDir

    dataset = RunDir(run).read_dataset()
    files, _ = dataset.split_paths("test" if "test" in dataset.splits else "val")
    return [(Path(f).name, Path(f).read_bytes()) for f in files[:count]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# arm -> (`imgclf serve --backend`, `--precision`): torch at its default (auto: bf16 where the CPU has it
# natively), the same forced to fp32 (what torch served at before auto; the same as torch elsewhere), the ONNX graph,
# and the ONNX graph exported with `--quantize int8` (served from a copy of the run, whose export it is)
ARMS = {"torch": ("torch", "auto"), "torch-fp32": ("torch", "32"), "onnx": ("onnx", "auto"),
        "onnx-int8": ("onnx", "auto")}


def int8_copy(run: Path, work: Path) -> Path:
    """A copy of the run under the benchmark's work folder (its model, card and statistics; not its export) whose
    export/model.onnx is the int8 graph: what `imgclf export RUN --quantize int8` then `imgclf serve RUN --backend
    onnx` serve."""
    from imgclf.export import export_run

    copy = work / "int8-copies" / run.name
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    export_run(copy, quantize="int8")
    return copy


def start_server(run: Path, port: int, arm: str) -> subprocess.Popen:
    backend, precision = ARMS[arm]
    cmd = [sys.executable, "-m", "imgclf.cli", "serve", str(run), "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--backend", backend, "--precision", precision]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            health(port)
            return proc
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError("the server did not answer /health within 120 s")


async def load(url: str, files: list[tuple[str, bytes]], total: int, concurrency: int, time_limit: float) -> dict:
    """`concurrency` clients on keep-alive connections, each sending its next request when the last is answered."""
    import aiohttp  # the load generator: httpx's async pool cost more CPU per request than the server did (measured)

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    issued = 0
    stop_at = time.perf_counter() + time_limit

    async def client_loop(session: "aiohttp.ClientSession") -> None:
        nonlocal issued
        while issued < total and time.perf_counter() < stop_at:
            name, data = files[issued % len(files)]
            issued += 1
            form = aiohttp.FormData()
            form.add_field("files", data, filename=name, content_type="image/png")
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=form) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(session) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "seconds": wall,
            "stopped_by_time_limit": len(latencies) + len(errors) < total}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from Linux's /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        return json.loads(r.read())


class Phase:
    """Accumulates the rounds of one mode (concurrent or sequential) into one summary."""

    def __init__(self, clients: int):
        self.clients = clients
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.seconds = self.server_cpu = self.client_cpu = 0.0
        self.passes = self.images = 0
        self.stopped_by_time_limit = False
        self.load_averages: list[float] = []

    def run(self, pid: int, port: int, url: str, files, total: int, time_limit: float) -> None:
        before, server_cpu, client_cpu = health(port), cpu_seconds(pid), time.process_time()
        out = asyncio.run(load(url, files, total, self.clients, time_limit))
        self.server_cpu += cpu_seconds(pid) - server_cpu
        self.client_cpu += time.process_time() - client_cpu
        after = health(port)
        self.passes += after["forward_passes"] - before["forward_passes"]
        self.images += after["images"] - before["images"]
        self.latencies += out["latencies"]
        self.errors += out["errors"]
        for k, v in out["statuses"].items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        self.seconds += out["seconds"]
        self.stopped_by_time_limit |= out["stopped_by_time_limit"]
        self.load_averages.append(round(os.getloadavg()[0], 2))

    def summary(self) -> dict:
        lat = np.array(self.latencies) * 1000
        n = max(1, len(self.latencies))
        return {
            "clients": self.clients,
            "requests": len(self.latencies),
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(len(self.latencies) / self.seconds, 2),
            "latency_ms": {q: round(float(np.percentile(lat, p)), 2) for q, p in
                           (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
            "status_counts": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
            "transport_errors": len(self.errors),
            "first_transport_errors": self.errors[:3],
            "mean_batch": round(self.images / self.passes, 2) if self.passes else None,
            "server_cpu_ms_per_request": round(1000 * self.server_cpu / n, 3),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu / n, 3),
            "stopped_by_time_limit": self.stopped_by_time_limit,
            "load_average_1min_after_each_round": self.load_averages,
        }


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def backend_summary(concurrent: Phase, sequential: Phase, backend: str) -> dict:
    c = concurrent.summary()
    out = {"backend": backend, "concurrent": c,
           "server_errors_5xx": c["server_errors_5xx"], "transport_errors": c["transport_errors"]}
    if sequential.latencies:
        s = sequential.summary()
        out["sequential"] = s
        out["speedup_concurrent_over_sequential"] = round(c["throughput_rps"] / s["throughput_rps"], 2)
        out["server_errors_5xx"] += s["server_errors_5xx"]
        out["transport_errors"] += s["transport_errors"]
    return out


def where_time_goes(run: Path, arm: str, files: list[tuple[str, bytes]], batch: int, repeats: int) -> dict:
    """CPU time (this thread's, so other jobs on the machine inflate it little) of the two parts of a request
    that are the backend's own, measured in this process the way the server runs them: decoding one upload and
    the forward pass at `batch` (the servers' mean under load), per image. The rest of the server's CPU
    per request is HTTP, multipart parsing, the batcher and JSON, the same code for both backends."""
    import io

    import torch

    from imgclf.backends import load_classifier

    threads = torch.get_num_threads()
    try:
        backend, precision = ARMS[arm]
        clf = load_classifier(run, backend, threads=1, precision=precision)  # as `imgclf serve` runs on 2 cores
        data = [d for _, d in files]
        pixels = np.stack([clf.decode(io.BytesIO(d)) for d in data])
        chunk = np.concatenate([pixels] * (batch // len(pixels) + 1))[:batch]

        def cpu_ms(work, n: int) -> float:
            work()  # first call: allocations, lazy initialisation
            start = time.thread_time()
            for _ in range(n):
                work()
            return 1000 * (time.thread_time() - start) / n

        return {"batch": batch,
                "decode_cpu_ms_per_image": round(cpu_ms(lambda: [clf.decode(io.BytesIO(d)) for d in data], 3)
                                                 / len(data), 4),
                "forward_cpu_ms_per_image": round(cpu_ms(lambda: clf.infer_pixels(chunk), repeats) / batch, 4),
                "forward_cpu_ms_single_image": round(cpu_ms(lambda: clf.infer_pixels(chunk[:1]), repeats), 4)}
    finally:
        torch.set_num_threads(threads)


def bench_run(run: Path, args: argparse.Namespace, label: str) -> dict:
    backends = args.backends
    if "onnx" in backends:
        from imgclf.export import export_run

        export_run(run)
    served = {b: int8_copy(run, args.work_folder) if b == "onnx-int8" else run for b in backends}
    from imgclf.records import RunDir

    card = RunDir(run).read_card()
    files = payloads(run)
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    phases = {b: (Phase(args.concurrency), Phase(1)) for b in backends}
    precisions: dict[str, str | None] = {}
    try:
        for backend in backends:
            port = free_port()
            servers[backend] = (start_server(served[backend], port, backend), port)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as answer:
                precisions[backend] = json.loads(answer.read()).get("precision")  # what the server runs at
            # warm-up: first forward passes, connections
            asyncio.run(load(f"http://127.0.0.1:{port}/predict", files, args.warmup, 4, 30))
        for r in range(args.rounds):
            # the order alternates too: the first backend of a round must not always meet the same load
            for backend in backends if r % 2 == 0 else backends[::-1]:
                server, port = servers[backend]
                url = f"http://127.0.0.1:{port}/predict"
                concurrent, sequential = phases[backend]
                concurrent.run(server.pid, port, url, files, args.requests // args.rounds,
                               args.time_limit / args.rounds)
                if args.sequential_requests:
                    sequential.run(server.pid, port, url, files, args.sequential_requests // args.rounds,
                                   args.time_limit / args.rounds)
    finally:
        for server, _ in servers.values():
            stop(server)
    per_backend = {b: {**backend_summary(*phases[b], b), "precision": precisions.get(b)} for b in backends}
    # one batch size for every arm (the mean of the batches their servers reached), so that the forward passes'
    # CPU per image compare at equal batches: 7 against 8 had flattered the arm whose batches came out smaller
    batch = max(1, round(statistics.mean(o["concurrent"]["mean_batch"] or 1 for o in per_backend.values())))
    for b, out in per_backend.items():
        c = out["concurrent"]
        parts = where_time_goes(served[b], b, files, batch, 5 if args.smoke else 100)
        parts["rest_cpu_ms_per_request"] = round(c["server_cpu_ms_per_request"] - parts["decode_cpu_ms_per_image"]
                                                 - parts["forward_cpu_ms_per_image"], 3)
        out["server_cpu_parts"] = parts
    for b, out in per_backend.items():
        c = out["concurrent"]
        print(f"{label} [{b}]: {args.concurrency} clients {c['throughput_rps']} req/s (p50 {c['latency_ms']['p50']} ms, "
              f"p99 {c['latency_ms']['p99']} ms, mean batch {c['mean_batch']}, server CPU "
              f"{c['server_cpu_ms_per_request']} ms/request); errors 5xx {out['server_errors_5xx']}, transport "
              f"{out['transport_errors']}; forward {out['server_cpu_parts']['forward_cpu_ms_per_image']} ms CPU/image at "
              f"batch {out['server_cpu_parts']['batch']}, decode {out['server_cpu_parts']['decode_cpu_ms_per_image']}, "
              f"rest {out['server_cpu_parts']['rest_cpu_ms_per_request']} ms/request"
              + (f"; one at a time {out['sequential']['throughput_rps']} req/s "
                 f"(p50 {out['sequential']['latency_ms']['p50']} ms)" if "sequential" in out else ""))
    result = {
        "model": {"architecture": card.architecture, "img_size": card.img_size, "in_chans": card.in_chans,
                  "classes": len(card.classes), "num_params": card.num_params, "run": label},
        "backends": per_backend,
        "server_errors_5xx": sum(o["server_errors_5xx"] for o in per_backend.values()),
        "transport_errors": sum(o["transport_errors"] for o in per_backend.values()),
    }
    if {"torch", "onnx"} <= set(backends):
        t, o = per_backend["torch"]["concurrent"], per_backend["onnx"]["concurrent"]
        tp, op = per_backend["torch"]["server_cpu_parts"], per_backend["onnx"]["server_cpu_parts"]
        ratio = o["throughput_rps"] / t["throughput_rps"]
        errors = per_backend["onnx"]["server_errors_5xx"] + per_backend["onnx"]["transport_errors"]
        result["onnx_over_torch"] = {
            "throughput": round(ratio, 3),
            "p50": round(o["latency_ms"]["p50"] / t["latency_ms"]["p50"], 3),
            "p99": round(o["latency_ms"]["p99"] / t["latency_ms"]["p99"], 3),
            "server_cpu_per_request": round(o["server_cpu_ms_per_request"] / t["server_cpu_ms_per_request"], 3),
            "forward_cpu_per_image": round(op["forward_cpu_ms_per_image"] / tp["forward_cpu_ms_per_image"], 3),
        }
        result["meets_target"] = {"throughput_1_5x": ratio >= 1.5,
                                  "p99_no_worse": o["latency_ms"]["p99"] <= t["latency_ms"]["p99"],
                                  "onnx_no_errors": errors == 0}
        print(f"{label}: onnx/torch {ratio:.2f}x req/s, p99 {o['latency_ms']['p99']} vs {t['latency_ms']['p99']} ms; "
              f"target (>= 1.5x, p99 no worse, 0 errors) {'met' if all(result['meets_target'].values()) else 'MISSED'}")
    if {"torch", "onnx-int8"} <= set(backends):
        t, q = per_backend["torch"], per_backend["onnx-int8"]
        ratio = q["concurrent"]["throughput_rps"] / t["concurrent"]["throughput_rps"]
        result["onnx_int8_over_torch"] = {
            "throughput": round(ratio, 3),
            "p50": round(q["concurrent"]["latency_ms"]["p50"] / t["concurrent"]["latency_ms"]["p50"], 3),
            "p99": round(q["concurrent"]["latency_ms"]["p99"] / t["concurrent"]["latency_ms"]["p99"], 3),
            "server_cpu_per_request": round(q["concurrent"]["server_cpu_ms_per_request"]
                                            / t["concurrent"]["server_cpu_ms_per_request"], 3),
            "forward_cpu_per_image": round(q["server_cpu_parts"]["forward_cpu_ms_per_image"]
                                           / t["server_cpu_parts"]["forward_cpu_ms_per_image"], 3)}
        result["int8_check"] = json.loads((served["onnx-int8"] / "export" / "model.onnx.json").read_text())[
            "export"]["quantization_check"]
        print(f"{label}: onnx int8/torch {ratio:.2f}x req/s, p99 {q['concurrent']['latency_ms']['p99']} vs "
              f"{t['concurrent']['latency_ms']['p99']} ms; int8 against fp32 on validation: top-1 agreement "
              f"{result['int8_check']['top1_agreement']}")
    if {"torch", "torch-fp32"} <= set(backends):
        t, fp = per_backend["torch"]["concurrent"], per_backend["torch-fp32"]["concurrent"]
        result["torch_auto_over_fp32"] = {
            "precision": precisions.get("torch"),
            "throughput": round(t["throughput_rps"] / fp["throughput_rps"], 3),
            "p99": round(t["latency_ms"]["p99"] / fp["latency_ms"]["p99"], 3),
            "forward_cpu_per_image": round(per_backend["torch"]["server_cpu_parts"]["forward_cpu_ms_per_image"]
                                           / per_backend["torch-fp32"]["server_cpu_parts"]["forward_cpu_ms_per_image"],
                                           3)}
        print(f"{label}: torch at auto / fp32 {result['torch_auto_over_fp32']['throughput']:.2f}x req/s")
    return result


def _backends(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names or any(b not in ARMS for b in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"backends must be a comma-separated list of {', '.join(ARMS)}, each at "
                                         f"most once. Received: {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", help="run directory to serve (repeatable; default: "
                                                              "train the --models on digits)")
    ap.add_argument("--models", default="simple_cnn:16,model_s:32",
                    help="MODEL:IMG_SIZE,... trained on digits when no --run is given")
    ap.add_argument("--epochs", type=int, default=1, help="epochs for the runs this script trains")
    ap.add_argument("--requests", type=int, default=2000, help="requests sent by --concurrency clients")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--sequential-requests", type=int, default=500, help="requests sent one at a time (0: none)")
    ap.add_argument("--rounds", type=int, default=4, help="alternations of the backends and the two modes")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per mode and run")
    ap.add_argument("--warmup", type=int, default=50, help="requests sent before measuring")
    ap.add_argument("--backends", default="torch,onnx", type=_backends,
                    help="comma-separated serving backends, measured interleaved (torch, torch-fp32, onnx, "
                         "onnx-int8)")
    ap.add_argument("--tag", default="", help="result file suffix: results/serve<tag>.json (one per machine class)")
    return add_arguments(ap)


def main(argv: list[str] | None = None) -> None:
    from imgclf import hardware
    from imgclf.io import write_json

    args = build_parser().parse_args(argv)
    bench = Bench.from_args(args)
    if bench.smoke:
        args.models, args.requests, args.sequential_requests, args.rounds = "simple_cnn:16", 24, 6, 2
        args.backends = list(dict.fromkeys([*args.backends, "onnx-int8"]))  # the int8 arm's plumbing too
        args.concurrency, args.time_limit, args.warmup = 4, 20.0, 4
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    if args.run:
        runs = [(run, str(run)) for run in args.run]
    else:
        runs = []
        for spec in args.models.split(","):
            model, _, size = spec.partition(":")
            runs.append((make_run(bench, model, int(size or 32), args.epochs),
                         f"{model} at {size}px, trained {args.epochs} epoch(s) on digits by this script"))
    args.work_folder = bench.work
    results = [bench_run(run, args, label) for run, label in runs]

    report = {
        "benchmark": "imgclf serve: POST /predict, one PNG per request, loopback HTTP/1.1 keep-alive, aiohttp client",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m benchmarks.serve_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "results": results,
        "server_errors_5xx_total": sum(r["server_errors_5xx"] for r in results),
        "transport_errors_total": sum(r["transport_errors"] for r in results),
        "seconds_total": round(time.perf_counter() - started, 1),
        "environment": {**hardware.describe(), "python": platform.python_version(),
                        "versions": {name: version(name) for name in
                                     ("imgclf", "torch", "fastapi", "starlette", "uvicorn", "aiohttp", "onnxruntime")},
                        # uvicorn parses HTTP with httptools where it is installed (the serve extra has it), else h11
                        "http_parser": f"httptools {version('httptools')}" if find_spec("httptools")
                        else f"h11 {version('h11')}",
                        "server": "one uvicorn process per backend (both up, one loaded at a time), forward pass on "
                                  "1 thread (imgclf serve's default: half the cores)",
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
                        "load_average_1min_before": load_before[0],
                        "note": "the server and the load generator share the machine's cores" + (
                            ", and other work ran on the same CPU during the measurement (see the load averages): "
                            "wall-clock figures are noisy; server CPU per request less so" if load_before[0] > 1.0
                            else "; nothing else was running when it started")},
    }
    path = bench.results / f"serve{args.tag}.json"
    write_json(path, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
