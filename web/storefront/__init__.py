"""The storefront: browse, search, product pages, cart, checkout and the consumer's orders."""
from web.storefront.views import bp

__all__ = ["bp"]
