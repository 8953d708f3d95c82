"""Gunicorn settings read from the working directory (or `-c gunicorn.conf.py`): the server's own error answers (a
request it cannot parse) in the API's JSON error shape."""


def on_starting(server):
    """Before the workers are forked: gunicorn's error answers are JSON."""
    from shop.gunicorn import answer_errors_in_json

    answer_errors_in_json()
