"""Request and response schemas of sign-in, registration and user management."""
from __future__ import annotations

import re

from flask import g
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shop.auth.models import ROLES, USER_CHANGES, USERNAME_PATTERN
from shop.fields import Bool, Choice, Id, Identifier, mask_personal_numbers
from shop.pagination import DatedPageQuery, PageQuery

USERNAME_MAX = 64  # users.username is String(64)
PASSWORD = validate.Length(min=8, max=128)
MAINLAND_MOBILE = r"^1[3-9]\d{9}$"
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"
USERNAME_RULE = "Only letters a-z, digits and . _ - (no look-alikes from other scripts)."


def Username(*, pattern: str = NO_CONTROL, pattern_error: str = "Must not contain spaces or control characters.",
             **kwargs) -> Identifier:  # noqa: N802 - a field factory
    """A username: NFKC, invisible characters removed, trimmed, lower case, at most 64 characters."""
    return Identifier(max_length=USERNAME_MAX, case="lower", pattern=pattern, pattern_error=pattern_error, **kwargs)


class TokenRequest(Schema):
    """Credentials for a token (the username in any spelling; the password exactly as typed)."""

    username = Username(required=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class TokenOut(Schema):
    """An issued bearer token."""

    access_token = fields.String()
    token_type = fields.Constant("Bearer", metadata={"type": "string"})
    role = fields.String()
    expires_at = fields.DateTime()


class RegisterRequest(Schema):
    """A consumer's sign-up; full-width digits, spaces and dashes in the number are folded away."""

    phone = Identifier(max_length=11, case=None, drop_separators=True, pattern=MAINLAND_MOBILE,
                       pattern_error="Not a mainland China mobile number.", required=True)
    password = fields.String(required=True, validate=PASSWORD)


def _shown_username(user) -> str:
    """A user's username; to an auditor with personal numbers (a consumer's phone) masked, as the user audit shows."""
    viewer = g.get("user")
    return mask_personal_numbers(user.username) if viewer is not None and viewer.role == "auditor" else user.username


class UserOut(Schema):
    """A user as admins see it (never the password hash; an auditor sees phone numbers in usernames masked)."""

    id = fields.Integer()
    username = fields.Function(_shown_username, metadata={"type": "string"})
    role = fields.String()
    store_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class UserCreate(Schema):
    """An admin creates a user with its role and scope."""

    username = Username(pattern=USERNAME_PATTERN, pattern_error=USERNAME_RULE, required=True,
                        validate=validate.Length(min=3))
    password = fields.String(required=True, validate=PASSWORD)
    role = Choice(ROLES, required=True)
    store_id = Id(load_default=None, allow_none=True)
    supplier_id = Id(load_default=None, allow_none=True)

    @validates_schema
    def _consumer_is_a_phone_number(self, data, **_kwargs):
        """A consumer's username is their mainland mobile number, as registration makes it."""
        if data.get("role") == "consumer" and not re.fullmatch(MAINLAND_MOBILE, data.get("username", "")):
            raise ValidationError({"username": ["A consumer's username is a mainland China mobile number."]})


class UserUpdate(Schema):
    """An admin disables/enables a user, resets its password or changes its role or scope (a changed role clears
    the scope fields not given)."""

    active = Bool()
    password = fields.String(validate=PASSWORD)
    role = Choice(ROLES)
    store_id = Id(allow_none=True)
    supplier_id = Id(allow_none=True)


class PasswordChange(Schema):
    """A signed-in user's new password, with the current one."""

    current_password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, validate=PASSWORD)


class UserQuery(PageQuery):
    """Filters of the user list."""

    role = Choice(ROLES, load_default=None)


class UserChangeOut(Schema):
    """An audit row of a user's creation or change (personal numbers in usernames masked; never a password)."""

    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    action = fields.String(metadata={"enum": list(USER_CHANGES)})
    actor_id = fields.Integer(allow_none=True)
    actor_username = fields.String(allow_none=True)
    old_role = fields.String(allow_none=True)
    new_role = fields.String(allow_none=True)
    old_store_id = fields.Integer(allow_none=True)
    new_store_id = fields.Integer(allow_none=True)
    old_supplier_id = fields.Integer(allow_none=True)
    new_supplier_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class UserChangeQuery(DatedPageQuery):
    """User change filters: the changed user, the period."""

    user_id = Id(load_default=None, strict=False)
