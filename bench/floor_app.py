"""The floor: a minimal Flask app returning a captured JSON payload (file BENCH_FLOOR_JSON) at any path."""
from __future__ import annotations

import json
import os

from flask import Flask

with open(os.environ["BENCH_FLOOR_JSON"], encoding="utf-8") as _file:
    PAYLOAD = json.load(_file)

app = Flask(__name__)
app.json.ensure_ascii = False
app.json.sort_keys = False


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def payload(path: str):
    """The captured payload, serialised by Flask as the real app serialises its own."""
    return PAYLOAD
