"""The application shell: `create_app` builds a configured Flask app with every domain."""
from __future__ import annotations

import logging
import os
import re
import uuid

from flask import Flask, g, request

from shop.access_logs import mask_access_logs
from shop.blueprint import check_query
from shop.bodies import GuardBodyReads, check_body
from shop.config import exit_on_config_error, from_environ
from shop.converters import CodeConverter, IdConverter, StringConverter
from shop.db import commit_ordered_tables, hide_database_errors_in_logs
from shop.devserver import RawUrlFix, answer_errors_in_json
from shop.errors import document_error_codes, register_error_handlers, register_unique_conflicts
from shop.extensions import SessionCookies, api, cache, check_limits_only_where_set, db, limiter, migrate, trust_proxies
from shop.fields import computed2properties
from shop.openapi import nullable_nested2properties
from shop.periodic import install_embedded_scheduler
from shop.worker import celery_init_app

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: dict | None = None) -> Flask:
    """Create the app: env-driven config, overridden by `config`, then every domain."""
    if config is None:  # an entry point (flask CLI, gunicorn, Celery): a ConfigError is one line, exit status 4
        with exit_on_config_error():
            return create_app({})
    app = Flask(__name__, instance_relative_config=True)
    app.url_map.converters["int"] = IdConverter  # before any route: every <int:…> is an id in 1 … 2³¹−1
    app.url_map.converters["default"] = CodeConverter  # and every bare <name> a code in its one spelling
    app.url_map.converters["string"] = StringConverter  # and every <string:…> an id without control characters
    app.session_interface = SessionCookies()  # an API request's empty session costs no signer
    app.url_map.merge_slashes = False  # a doubled slash is no path of ours (a 404), not a redirect with an HTML body
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(from_environ(app.instance_path))
    app.config.update(config or {})
    app.wsgi_app = RawUrlFix(GuardBodyReads(app.wsgi_app))
    answer_errors_in_json()  # `flask run` (`make run`) serves with Werkzeug's handler, whose own errors are HTML
    trust_proxies(app)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    hide_database_errors_in_logs()
    mask_access_logs()

    _init_extensions(app)
    register_error_handlers(app)
    _install_request_hooks(app)
    _init_domains(app)
    document_error_codes(app, api.spec.components.schemas)
    install_embedded_scheduler(app)  # embedded default: the beat schedule on a timer, from the first request
    return app


def _init_extensions(app: Flask) -> None:
    """Bind the shared extensions to `app`."""
    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    cache.init_app(app)
    limiter.init_app(app)
    check_limits_only_where_set(app)
    api.init_app(app)
    api.ma_plugin.converter.add_attribute_function(computed2properties)  # before any schema is documented
    api.ma_plugin.converter.add_attribute_function(nullable_nested2properties)
    celery_init_app(app)


def _init_domains(app: Flask) -> None:
    """Register the shell's own parts, then each domain in layer order."""
    import catalog
    import orders
    import suppliers
    import web
    from shop import auth, cli, docs, headers, health, http, idempotency, regions, tasks  # noqa: F401 - importing registers tasks and models

    for part in (headers, http, health, auth, docs, idempotency, regions, cli, suppliers, catalog, orders, web):
        part.init_app(app)
    register_unique_conflicts(app, {f"uq_{table}_commit_seq": None for table in commit_ordered_tables()})


def _install_request_hooks(app: Flask) -> None:
    """Request ids for logs and responses; API query strings and bodies checked before any view (`shop.blueprint`,
    `shop.bodies`)."""

    @app.before_request
    def _start_request():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        return check_query(app) or check_body(app)

    @app.after_request
    def _tag_response(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
