"""Result rows: printed as a table and written to `bench/results/<name>.json`."""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_ROW_FORMAT = "{:<12} {:<14} {:>12} {:>12} {:>7}"


@dataclass(frozen=True)
class Row:
    """One figure, the floor's figure for the same metric, and their ratio (value / floor)."""

    metric: str
    value: float
    unit: str
    floor: float

    @property
    def ratio(self) -> float:
        """The figure divided by the floor's."""
        return self.value / self.floor if self.floor else float("nan")


@dataclass
class Result:
    """What one benchmark measured, with the settings it ran under."""

    name: str
    rows: list[Row]
    settings: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


def _number(value: float, unit: str) -> str:
    """A figure with its unit, at a precision that suits its size."""
    return f"{value:,.0f} {unit}" if abs(value) >= 100 else f"{value:.2f} {unit}"


def table_header() -> str:
    """The header line of the results table."""
    return _ROW_FORMAT.format("benchmark", "metric", "value", "floor", "ratio")


def table_lines(result: Result) -> list[str]:
    """The table lines of `result`, one per row."""
    return [_ROW_FORMAT.format(result.name, row.metric, _number(row.value, row.unit),
                               _number(row.floor, row.unit), f"{row.ratio:.2f}")
            for row in result.rows]


def write_result(result: Result) -> Path:
    """Write `result` as JSON to `bench/results/<name>.json` and return the path."""
    document = {
        "name": result.name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": [{**asdict(row), "ratio": round(row.ratio, 4)} for row in result.rows],
        "settings": result.settings,
        "details": result.details,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{result.name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
