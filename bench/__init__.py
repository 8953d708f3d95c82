"""The benchmark harness: each benchmark measures a figure beside its floor in the same run.

A benchmark is a module in `bench/benchmarks/` with a function decorated `@benchmark("name")`
that returns a `bench.results.Result`; `python -m bench [NAME ...]` runs them.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from bench.results import Result

BENCHMARKS: dict[str, Callable[[], Result]] = {}


class BenchError(RuntimeError):
    """A benchmark cannot run or produced no trustworthy figure."""


def benchmark(name: str) -> Callable[[Callable[[], Result]], Callable[[], Result]]:
    """Register the decorated function as the benchmark `name`."""

    def register(function: Callable[[], Result]) -> Callable[[], Result]:
        if name in BENCHMARKS:
            raise ValueError(f"Benchmark {name!r} is defined twice.")
        BENCHMARKS[name] = function
        return function

    return register


def progress(message: str) -> None:
    """Tell the person waiting what the harness is doing now."""
    print(f"  … {message}", file=sys.stderr, flush=True)
