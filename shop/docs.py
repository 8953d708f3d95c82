"""The API docs page's Swagger UI assets, served from the installed `swagger-ui-bundle` (no CDN)."""
from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")

assets = Blueprint("docs_assets", __name__, url_prefix="/api/v1/docs/assets")


@assets.get("/<any(" + ", ".join(f'"{name}"' for name in ASSETS) + "):filename>")
def swagger_ui_asset(filename: str):
    """One Swagger UI file the docs page loads (cached for a day)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    """Serve the docs page's assets (`OPENAPI_SWAGGER_UI_URL` points here)."""
    app.register_blueprint(assets)
