"""The API docs page: Swagger UI's assets from the installed `swagger-ui-bundle` (no CDN), started by our own script
file rather than flask-smorest's inline one, which the Content-Security-Policy (`shop.headers`) would block."""
from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app, json, render_template, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from shop.blueprint import document_filter_scopes
from shop.extensions import api

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
OWN_ASSETS = os.path.join(os.path.dirname(__file__), "static", "docs")

assets = Blueprint("docs_assets", __name__, url_prefix="/api/v1/docs/assets", template_folder="templates")


@assets.get("/<any(" + ", ".join(f'"{name}"' for name in ASSETS) + "):filename>")
def swagger_ui_asset(filename: str):
    """One Swagger UI file the docs page loads (cached for a day)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


@assets.get("/swagger-init.js")
def swagger_init():
    """The script that starts Swagger UI on the docs page."""
    return send_from_directory(OWN_ASSETS, "swagger-init.js", max_age=3600)


def swagger_ui_page():
    """The docs page: flask-smorest's, with its inline start-up script moved to `swagger-init.js`."""
    config = current_app.config
    return render_template("docs/swagger_ui.html", title=config["API_TITLE"],
                           spec_url=url_for("api-docs.openapi_json"), swagger_ui_url=config["OPENAPI_SWAGGER_UI_URL"],
                           swagger_ui_config=config.get("OPENAPI_SWAGGER_UI_CONFIG", {}))


def openapi_document() -> Response:
    """The OpenAPI document, written out on its first read and then served as those bytes: it is fixed once the app is
    built, and writing ~0.5 MB of JSON on every anonymous read would cost tens of milliseconds of CPU each."""
    document = current_app.extensions.get("openapi_document")
    if document is None:
        spec = api.spec.to_dict()
        document_filter_scopes(current_app, spec)
        document = json.dumps(spec, indent=2, sort_keys=False)
        current_app.extensions["openapi_document"] = document
    return current_app.response_class(document, mimetype="application/json")


def init_app(app: Flask) -> None:
    """Serve the docs page and its assets (`OPENAPI_SWAGGER_UI_URL` points here), and the document once written."""
    app.register_blueprint(assets)
    app.view_functions["api-docs.openapi_swagger_ui"] = swagger_ui_page
    app.view_functions["api-docs.openapi_json"] = openapi_document
