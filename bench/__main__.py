"""`python -m bench [NAME ...]`: run the named benchmarks (all by default) and print the table."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import time

from bench import BENCHMARKS, BenchError, benchmarks
from bench.results import Result, table_header, table_lines, write_result


def discover() -> None:
    """Import every module of `bench.benchmarks`, registering its benchmarks."""
    for module in pkgutil.iter_modules(benchmarks.__path__):
        importlib.import_module(f"{benchmarks.__name__}.{module.name}")


def run(name: str) -> Result:
    """Run one benchmark, print its rows and write its JSON."""
    print(f"== {name}", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = BENCHMARKS[name]()
    path = write_result(result)
    print("\n".join([table_header(), *table_lines(result)]), flush=True)
    print(f"   ({time.monotonic() - started:.0f}s; written to {path.relative_to(path.parents[2])})\n",
          file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in `argv`, or all of them; non-zero exit when one failed."""
    discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(sorted(BENCHMARKS))}")
    names = parser.parse_args(argv).names or sorted(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(sorted(BENCHMARKS))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results, failed = [], []
    for name in names:
        try:
            results.append(run(name))
        except BenchError as exc:
            print(f"!! {name} failed: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
    if len(results) > 1:
        print("\n".join([table_header(), *(line for result in results for line in table_lines(result))]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
