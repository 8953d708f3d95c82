"""The app under test for gunicorn (`bench.wsgi:app`), configured from the environment."""
import gc

from shop import create_app

app = create_app()
gc.freeze()  # as the Celery worker does (shop.worker): the collector need not walk the startup objects
