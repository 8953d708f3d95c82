"""The benchmark's CPU meter: it counts the CPU of the processes a benchmark started, by role."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench import cpu

pytestmark = pytest.mark.skipif(not cpu.PROC.is_dir(), reason="the meter reads Linux's /proc")

BURN = ("import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
        "print('burnt', flush=True)\ntime.sleep(60)")


def _started(mark: str, seconds: float) -> subprocess.Popen:
    """A process in its own session (as the benchmarks start servers) whose command line holds `mark`, that
    burns `seconds` of CPU, says so on its stdout and then sleeps."""
    return subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds), mark], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)


def test_each_role_is_charged_the_cpu_of_its_own_sessions_only():
    roles = {"busy": "bench-meter-busy", "idle": "bench-meter-idle"}
    before = cpu.snapshot(roles)
    busy, idle = _started(roles["busy"], 0.5), _started(roles["idle"], 0)
    try:
        assert busy.stdout.readline() == "burnt\n" and idle.stdout.readline() == "burnt\n"
        after = cpu.snapshot(roles)
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
            process.stdout.close()
    assert 0.4 <= after["busy"] - before["busy"] <= 1.0
    assert after["idle"] - before["idle"] < 0.2
    assert set(after) == {"busy", "idle", "postgres", "clients"}


def test_cpu_per_unit_and_busy_cores_are_the_differences_divided():
    before = {"web": 1.0, "postgres": 2.0, "clients": 0.5}
    after = {"web": 3.0, "postgres": 3.0, "clients": 1.0}
    assert cpu.per_unit(before, after, 500) == {"web": 4.0, "postgres": 2.0, "clients": 1.0, "total": 7.0}
    assert cpu.busy_cores(before, after, 2.0) == 1.75
    assert cpu.per_unit({}, after, 500) == {} and cpu.per_unit(before, after, 0) == {}
    assert cpu.busy_cores({}, after, 2.0) is None
