"""The benchmarks: every module here registers its function with `@bench.benchmark`."""
