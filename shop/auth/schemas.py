"""Request and response schemas of sign-in, registration and user management."""
from __future__ import annotations

import unicodedata

from flask import g
from marshmallow import Schema, ValidationError, fields, post_dump, validate

from shop.auth.models import ROLES, USER_CHANGES, USERNAME_PATTERN, USERNAME_RULE
from shop.auth.passwords import TOO_COMMON, password_form, too_common
from shop.fields import (
    Bool,
    Choice,
    Id,
    Identifier,
    MobileNumber,
    QueryBool,
    is_blank,
    normalise_username,
)
from shop.pagination import DatedPageQuery, PageQuery

USERNAME_MAX = 64  # users.username is String(64)
PASSWORD_MIN, PASSWORD_MAX = 8, 128
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"


class Username(Identifier):
    """A username in its one spelling (`normalise_username`: a mobile number as its 11 digits, any other width-folded,
    invisible characters removed, trimmed, lower case), at most 64 characters."""

    def __init__(self, *, pattern: str = NO_CONTROL,
                 pattern_error: str = "Must not contain spaces or control characters.", **kwargs):
        super().__init__(max_length=USERNAME_MAX, case="lower", pattern=pattern, pattern_error=pattern_error, **kwargs)

    def normalise(self, text: str) -> str:
        """The username's one spelling."""
        return normalise_username(text)


PASSWORD_LENGTH = f"Must have {PASSWORD_MIN} to {PASSWORD_MAX} characters."


class Password(fields.String):
    """A new password, kept as typed (spaces too; it is hashed in its one form, `password_form`, so full-width is
    half-width): 8 to 128 characters (at most 128 as typed, as sign-in reads; at least 8 in its one form, so a letter
    typed with a combining accent counts once), no control characters, not only whitespace, not one of the most used
    passwords (the service refuses one holding the username); one message for what is wrong."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Length(min=PASSWORD_MIN, max=PASSWORD_MAX, error=PASSWORD_LENGTH), **kwargs)
        self.metadata.setdefault("pattern", NO_CONTROL)
        self.metadata.setdefault("description", f"{PASSWORD_MIN} to {PASSWORD_MAX} characters, no control "
                                                "characters, not only whitespace, not one of the most used passwords "
                                                "(in any case) and not holding the username.")

    def _deserialize(self, value, attr, data, **kwargs):
        password = super()._deserialize(value, attr, data, **kwargs)
        if any(unicodedata.category(char) == "Cc" for char in password):
            raise ValidationError("Must not contain control characters (tabs, line breaks, NUL …).")
        if password and is_blank(password):
            raise ValidationError("Must not be only spaces or invisible characters.")
        if PASSWORD_MIN <= len(password) <= PASSWORD_MAX:  # else its length as typed is what is wrong
            if len(password_form(password)) < PASSWORD_MIN:
                raise ValidationError(PASSWORD_LENGTH)
            if too_common(password):
                raise ValidationError(TOO_COMMON)
        return password


class TokenRequest(Schema):
    """Credentials for a token (the username in any spelling; the password as typed, in any width)."""

    username = Username(required=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=PASSWORD_MAX))


class TokenOut(Schema):
    """An issued bearer token."""

    access_token = fields.String()
    token_type = fields.Constant("Bearer", metadata={"type": "string"})
    role = fields.String()
    expires_at = fields.DateTime()


class RegisterRequest(Schema):
    """A consumer's sign-up with a mainland mobile number in any spelling (`MobileNumber`: +86, spaces and dashes
    folded away)."""

    phone = MobileNumber(required=True)
    password = Password(required=True)


class StaffFields(Schema):
    """A response schema whose `STAFF_ONLY` fields (staff user ids, a till's shift, internal event ids) a consumer's
    view leaves out: its consumer variant, chosen by the caller's role."""

    STAFF_ONLY: tuple[str, ...] = ()

    @post_dump
    def _consumer_variant(self, data: dict, **_kwargs) -> dict:
        """Without the staff-only fields when a consumer asks."""
        viewer = g.get("user")
        if viewer is not None and viewer.role == "consumer":
            for name in self.STAFF_ONLY:
                data.pop(name, None)
        return data


def _shown_username(user) -> str:
    """A user's username; to an auditor with personal numbers (a consumer's phone) masked, as the user audit shows."""
    viewer = g.get("user")
    return user.masked_username if viewer is not None and viewer.role == "auditor" else user.username


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
    password = Password(required=True)
    role = Choice(ROLES, required=True)
    store_id = Id(load_default=None, allow_none=True)
    supplier_id = Id(load_default=None, allow_none=True)


class UserUpdate(Schema):
    """An admin disables/enables a user, resets its password or changes its role or scope (a changed role clears
    the scope fields not given)."""

    active = Bool()
    password = Password()
    role = Choice(ROLES)
    store_id = Id(allow_none=True)
    supplier_id = Id(allow_none=True)


class PasswordChange(Schema):
    """A signed-in user's new password, with the current one."""

    current_password = fields.String(required=True, validate=validate.Length(min=1, max=PASSWORD_MAX))
    new_password = Password(required=True)


class UserQuery(PageQuery):
    """Filters of the user list: role, a username (in any spelling sign-in reads; an exact match), active or not."""

    role = Choice(ROLES, load_default=None)
    username = Username(load_default=None)
    active = QueryBool(load_default=None)


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
