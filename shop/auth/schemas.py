"""Request and response schemas of sign-in, registration and user management."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from shop.auth.models import ROLES
from shop.pagination import PageQuery

PASSWORD = validate.Length(min=8, max=128)
MAINLAND_MOBILE = validate.Regexp(r"^1[3-9]\d{9}$", error="Not a mainland China mobile number.")


class TokenRequest(Schema):
    """Credentials for a token."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class TokenOut(Schema):
    """An issued bearer token."""

    access_token = fields.String()
    token_type = fields.Constant("Bearer")
    role = fields.String()
    expires_at = fields.DateTime()


class RegisterRequest(Schema):
    """A consumer's sign-up."""

    phone = fields.String(required=True, validate=MAINLAND_MOBILE)
    password = fields.String(required=True, validate=PASSWORD)


class UserOut(Schema):
    """A user as admins see it (never the password hash)."""

    id = fields.Integer()
    username = fields.String()
    role = fields.String()
    store_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class UserCreate(Schema):
    """An admin creates a user with its role and scope."""

    username = fields.String(required=True, validate=validate.Length(min=3, max=64))
    password = fields.String(required=True, validate=PASSWORD)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    store_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    supplier_id = fields.Integer(strict=True, load_default=None, allow_none=True)


class UserUpdate(Schema):
    """An admin disables/enables a user or resets its password."""

    active = fields.Boolean()
    password = fields.String(validate=PASSWORD)


class UserQuery(PageQuery):
    """Filters of the user list."""

    role = fields.String(load_default=None, validate=validate.OneOf(ROLES))
