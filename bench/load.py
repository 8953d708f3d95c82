"""The load generator: wrk against a loopback URL, bounded in time, its output parsed."""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import BenchError, progress

CONNECTIONS = 32
THREADS = 2
WARMUP_SECONDS = 3
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99 = re.compile(r"^\s+99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
# Each request a path drawn at random from the file named by the script's argument; each thread its own seed.
RANDOM_PATHS_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() * 1000 + thread_number)
end
function request()
  return wrk.format(nil, paths[math.random(#paths)])
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests_per_s: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict:
        """The result as a JSON-ready mapping."""
        return asdict(self)


def seconds() -> int:
    """The measured duration of each load run: env BENCH_SECONDS, 10 by default."""
    raw = os.environ.get("BENCH_SECONDS", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= 600:
        raise BenchError(f"BENCH_SECONDS must be a whole number of seconds from 1 to 600, not {raw!r}.")
    return int(raw)


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's package when missing and this is root with apt-get."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError("wrk is not installed: install it (Debian/Ubuntu: `apt-get install wrk`) "
                         "and run the benchmarks again.")
    progress("wrk is missing: installing it with apt-get…")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=apt_env, capture_output=True, timeout=300).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=apt_env, capture_output=True, timeout=300)
        done = subprocess.run(install, env=apt_env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise BenchError(f"Could not install wrk with apt-get:\n{done.stderr.strip()}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is not on PATH.")
    return found


def prepare() -> None:
    """Check the load settings and that wrk is there, before any server starts."""
    seconds()
    ensure_wrk()


def parse_wrk(output: str) -> LoadResult:
    """Read requests/s, the 99th percentile latency and the error counts from `wrk --latency` output."""
    rate, p99, total = _REQUESTS_PER_SEC.search(output), _P99.search(output), _TOTAL.search(output)
    if not (rate and p99 and total):
        raise BenchError(f"Could not read wrk's output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    return LoadResult(
        requests_per_s=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNIT_MS[p99.group(2)],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def run_wrk(url: str, *, duration: int, script: Sequence[str] = ()) -> LoadResult:
    """Load `url` (loopback only) with wrk for `duration` seconds at the harness's concurrency; `script`:
    a Lua script's path and its arguments."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise BenchError(f"Load goes only to 127.0.0.1, not {url}.")
    command = [ensure_wrk(), f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", script[0], url, "--", *script[1:]]
    else:
        command.append(url)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 30}s.") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def measure(label: str, url: str) -> LoadResult:
    """Warm `url` up, then measure it for `seconds()`; fail when any response was not 2xx/3xx."""
    return _measured(label, url, ())


@contextmanager
def random_paths(paths: Sequence[str]) -> Iterator[tuple[str, str]]:
    """The Lua script that draws each request's path at random from `paths`, with its argument (a file)."""
    with tempfile.TemporaryDirectory(prefix="bench-paths-") as folder:
        script, listing = Path(folder) / "random_paths.lua", Path(folder) / "paths.txt"
        script.write_text(RANDOM_PATHS_LUA, encoding="utf-8")
        listing.write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
        yield str(script), str(listing)


def measure_paths(label: str, base: str, paths: Sequence[str], *, warmup: bool = True) -> LoadResult:
    """Like `measure`, each request one of `paths` (under `base`) drawn at random; `warmup=False` skips the
    warm-up (the server is warm from an earlier run)."""
    with random_paths(paths) as script:
        return _measured(label, base + "/", script, warmup=warmup)


def measure_alternating(targets: dict[str, tuple[str, Sequence[str]]], *, rounds: int) -> dict[str, LoadResult]:
    """Measure each target (label → base URL, paths drawn at random) for `seconds()` in all, in `rounds` slices
    taken in turn, so a change in the rest of the machine's load falls on every target alike: requests/s over
    all slices, p99 the median of the slices' p99s. Fail when any response was not 2xx/3xx."""
    duration = max(1, seconds() // rounds)
    slices: dict[str, list[LoadResult]] = {label: [] for label in targets}
    with ExitStack() as stack:
        scripts = {label: stack.enter_context(random_paths(paths)) for label, (_, paths) in targets.items()}
        progress(f"running wrk {rounds} × {duration}s against {', '.join(targets)} in turn "
                 f"(-t{THREADS} -c{CONNECTIONS})…")
        for _ in range(rounds):
            for label, (base, _) in targets.items():
                slices[label].append(run_wrk(base + "/", duration=duration, script=scripts[label]))
    results = {}
    for label, measured in slices.items():
        requests = sum(result.requests for result in measured)
        combined = LoadResult(
            requests_per_s=sum(r.requests_per_s for r in measured) / len(measured),
            p99_ms=statistics.median(r.p99_ms for r in measured), requests=requests,
            non_2xx=sum(r.non_2xx for r in measured), socket_errors=sum(r.socket_errors for r in measured))
        if combined.non_2xx:
            raise BenchError(f"{label}: {combined.non_2xx} of {requests} responses were not 2xx/3xx.")
        if combined.socket_errors:
            progress(f"warning: {label} had {combined.socket_errors} socket errors under load")
        results[label] = combined
    return results


def _measured(label: str, url: str, script: Sequence[str], *, warmup: bool = True) -> LoadResult:
    """Warm up (unless told not to), then measure for `seconds()`; fail when any response was not 2xx/3xx."""
    duration = seconds()
    if warmup:
        progress(f"warming up {label} ({WARMUP_SECONDS}s)…")
        run_wrk(url, duration=WARMUP_SECONDS, script=script)
    progress(f"running wrk {duration}s against {label} (-t{THREADS} -c{CONNECTIONS})…")
    result = run_wrk(url, duration=duration, script=script)
    if result.non_2xx:
        raise BenchError(f"{label}: {result.non_2xx} of {result.requests} responses were not 2xx/3xx.")
    if result.socket_errors:
        progress(f"warning: {label} had {result.socket_errors} socket errors under load")
    return result


def settings() -> dict:
    """The load settings every wrk benchmark records."""
    return {"load_generator": "wrk", "threads": THREADS, "connections": CONNECTIONS,
            "seconds": seconds(), "warmup_seconds": WARMUP_SECONDS}
