"""A buyer's order list runs newest first, page after page, and its cursors are its own: one signed for the
opposite direction is refused."""
from __future__ import annotations

from orders.models import Order
from shop.pagination import _serializer
from tests.orders.checkout.conftest import delivery_body
from tests.orders.payments.conftest import user_with_token


def test_a_buyers_orders_come_newest_first_across_pages(client, world):
    _, headers = user_with_token()
    placed = [client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers).json["id"]
              for _ in range(5)]

    seen, url = [], "/api/v1/orders?limit=2"
    while url:
        page = client.get(url, headers=headers).json
        seen += [order["id"] for order in page["items"]]
        url = page["next_cursor"] and f"/api/v1/orders?limit=2&cursor={page['next_cursor']}"

    assert seen == placed[::-1]


def test_a_cursor_signed_for_the_other_direction_is_refused(client, world):
    _, headers = user_with_token()
    for _ in range(3):
        client.post("/api/v1/orders", json=delivery_body((world["a"].sku, 1)), headers=headers)
    with client.application.test_request_context("/api/v1/orders"):
        oldest_first = _serializer([Order.id]).dumps([1])

    response = client.get(f"/api/v1/orders?limit=1&cursor={oldest_first}", headers=headers)

    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_cursor"
