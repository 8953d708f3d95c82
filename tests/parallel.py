"""Requests sent at once, for the races the tests run on both databases."""
from __future__ import annotations

import threading


def send_together(app, method: str, url: str, requests: list[tuple[dict, dict]]) -> list[tuple[int, dict]]:
    """Send each (headers, body) to `url` with `method` from its own thread, released together; the responses'
    (status, json)."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(i: int) -> None:
        headers, body = requests[i]
        client = app.test_client()
        barrier.wait()
        response = client.open(url, method=method, json=body, headers=headers)
        results[i] = (response.status_code, response.json)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def post_together(app, url: str, requests: list[tuple[dict, dict]]) -> list[tuple[int, dict]]:
    """POST each (headers, body) to `url` from its own thread, released together; the responses' (status, json)."""
    return send_together(app, "POST", url, requests)
