"""HTTP answers every API route gives alike: OPTIONS."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize(("path", "methods"), [
    ("/api/v1/orders", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("/api/v1/orders/42", {"GET", "HEAD", "OPTIONS"}),
    ("/api/v1/products/NOSUCHSKU", {"GET", "HEAD", "PATCH", "OPTIONS"}),
    ("/api/v1/auth/token", {"POST", "OPTIONS"}),
])
def test_options_on_an_api_route_is_204_with_its_methods_and_no_body(client, path, methods):
    response = client.options(path)

    assert response.status_code == 204
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == methods
    assert response.data == b"" and "Content-Type" not in response.headers


def test_options_on_an_unknown_api_path_is_the_json_404(client):
    response = client.options("/api/v1/nowhere")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
