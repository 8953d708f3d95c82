"""The app under test for gunicorn (`bench.wsgi:app`), configured from the environment."""
from shop import create_app

app = create_app()
