"""The storefront: browse, search, product pages, cart, checkout and the consumer's orders."""
from web.storefront import orders as _orders  # noqa: F401 - registers the order pages on the blueprint
from web.storefront.views import bp

__all__ = ["bp"]
