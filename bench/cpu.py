"""Where the CPU went during a measured window: seconds of CPU by role, from Linux's `/proc`.

The roles are the processes a benchmark started (each in its own session, as `bench.servers` and the Celery
workers start them), told apart by their session leader's command line, PostgreSQL's processes (all of them:
backends, WAL writer and checkpointer work for the load too) and this process (the clients). Elsewhere than on
Linux there is no `/proc` and nothing is measured.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: str) -> tuple[int, float] | None:
    """A process's session id and CPU seconds used so far (user + system), None if it is gone."""
    try:
        fields = (PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / _TICKS


def _command(pid: int) -> str:
    """A process's command line, '' if it is gone."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_postgres(pid: str) -> bool:
    """Whether a process is one of PostgreSQL's."""
    try:
        return (PROC / pid / "comm").read_text().strip() == "postgres"
    except OSError:
        return False


def snapshot(roles: dict[str, str]) -> dict[str, float]:
    """CPU seconds used so far by each role: `roles` maps a role to a string its session leader's command line
    holds; `postgres` and `clients` are added. Empty where there is no `/proc`."""
    if not PROC.is_dir():
        return {}
    totals = dict.fromkeys([*roles, "postgres"], 0.0)
    leaders: dict[int, str | None] = {}
    for pid in filter(str.isdigit, os.listdir(PROC)):
        found = _stat(pid)
        if found is None:
            continue
        session, seconds = found
        if _is_postgres(pid):
            totals["postgres"] += seconds
            continue
        if session not in leaders:
            command = _command(session)
            leaders[session] = next((role for role, mark in roles.items() if mark in command), None)
        if leaders[session] is not None:
            totals[leaders[session]] += seconds
    totals["clients"] = time.process_time()
    return totals


def per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work (a paid order, a round) by role between two snapshots, with their
    sum as `total`; empty if nothing was measured or no unit was done."""
    if not before or not after or units <= 0:
        return {}
    spent = {role: max(0.0, after[role] - before[role]) * 1000 / units for role in after}
    return {**{role: round(ms, 2) for role, ms in spent.items()}, "total": round(sum(spent.values()), 2)}


def busy_cores(before: dict[str, float], after: dict[str, float], seconds: float) -> float | None:
    """How many cores the roles kept busy on average between two snapshots `seconds` apart (None if unmeasured)."""
    if not before or not after or seconds <= 0:
        return None
    return round(sum(max(0.0, after[role] - before[role]) for role in after) / seconds, 2)
