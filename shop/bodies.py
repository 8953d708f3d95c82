"""The JSON body guard: every API body is parsed once, strictly, before any view or schema sees it.

Python's parser accepts what no client of ours sends and what later code cannot handle: lone UTF-16
surrogates (`"\\ud800"`, which cannot be stored, hashed or encoded), nesting deep enough to exhaust
the recursion limit, integers of thousands of digits, and `NaN`/`Infinity`. Such a body is
malformed: 400, before anything is parsed into a schema or written.
"""
from __future__ import annotations

import json

MAX_DEPTH = 64
MAX_INT_DIGITS = 30


def _parse_int(text: str) -> int:
    """An integer literal, refused beyond any realistic size (before Python converts it)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _reject_constant(name: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _check(value, depth: int) -> None:
    """Walk a parsed value: bounded depth, every string (keys too) encodable as UTF-8."""
    if depth > MAX_DEPTH:
        raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check(item, depth + 1)


def parse_json(data: bytes) -> object:
    """A body parsed by the rules above; `ValueError` saying why it is not acceptable JSON."""
    try:
        value = json.loads(data, parse_int=_parse_int, parse_constant=_reject_constant)
        _check(value, 0)
    except RecursionError:
        raise ValueError(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds an unpaired UTF-16 surrogate") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc).split(":")[0]) from None
    return value


def json_body_problem(data: bytes) -> str | None:
    """Why a request body is not acceptable JSON, or None when it is."""
    try:
        parse_json(data)
    except ValueError as exc:
        return str(exc)
    return None
