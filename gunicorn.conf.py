"""Gunicorn settings read from the working directory (or `-c gunicorn.conf.py`): the server's own error answers (a
request it cannot parse) in the API's JSON error shape, and every log record, the app's and gunicorn's, one JSON line
on stderr."""
from shop.gunicorn import LOG_CONFIG as logconfig_dict  # noqa: F401 - gunicorn reads the name


def on_starting(server):
    """Before the workers are forked: gunicorn's error answers are JSON."""
    from shop.gunicorn import answer_errors_in_json

    answer_errors_in_json()
