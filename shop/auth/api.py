"""Routes: tokens, consumer registration, user administration and its audit."""
from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from shop.attempts import Attempt, claim_attempt, failure_limit
from shop.auth import security, service
from shop.auth.models import ROLES
from shop.auth.schemas import (
    PasswordChange,
    RegisterRequest,
    TokenOut,
    TokenRequest,
    UserChangeOut,
    UserChangeQuery,
    UserCreate,
    UserOut,
    UserQuery,
    UserUpdate,
)
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.errors import ShopCode
from shop.extensions import client_address, limiter
from shop.http import ReadAt
from shop.pagination import page_schema

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Sign-in and users",
                not_found={"user_id": ShopCode.USER_NOT_FOUND})
# what the scope checks the store and supplier domains push (`scope_checks`) answer for a closed scope: named by value,
# as `shop` imports no domain (the document's codes are checked against the registered ones)
SCOPE_CONFLICTS = ("store_inactive", "supplier_inactive")


def _login_limit() -> str:
    """The configured limit on failed sign-ins."""
    return current_app.config["LOGIN_RATE_LIMIT"]


def _auth_limit() -> str:
    """The configured limit on all sign-ins and registrations."""
    return current_app.config["AUTH_RATE_LIMIT"]


def _register_limit() -> str:
    """The configured limit on registrations."""
    return current_app.config["REGISTER_RATE_LIMIT"]


def _failed(response) -> bool:
    """Only failed sign-ins count against the per-address limit (per username: `shop.auth.throttle`)."""
    return response.status_code == 401


def _wrong_password(response) -> bool:
    """Only a wrong current password counts against the per-address limit of a password change."""
    return response.status_code == 403


# one budget of failed sign-ins per address, shared by the token route, the sign-in page and password changes
login_limit = failure_limit(_login_limit, scope="sign-in", counts=_failed)
password_limit = failure_limit(_login_limit, scope="sign-in", counts=_wrong_password)


def sign_in_attempt() -> Attempt:
    """Claim a sign-in a view makes of its own (the registration page's, of the consumer it registered already) from
    the same budget of failed sign-ins per address; settle it `counted` if its password was wrong."""
    return claim_attempt(_login_limit, scope="sign-in")


# and one of all sign-ins and registrations per address, right or wrong, routes and pages alike: each hashes a password
auth_limit = limiter.shared_limit(_auth_limit, scope="password-hashing", methods=["POST"])
# and one of registrations per address, the route and the page together
register_limit = limiter.shared_limit(_register_limit, scope="registration", methods=["POST"])


@blp.route("/auth/token", methods=["POST"])
@auth_limit
@login_limit
@blp.errors({401: [ShopCode.INVALID_CREDENTIALS], 429: [ShopCode.TOO_MANY_ATTEMPTS, ShopCode.RATE_LIMITED]})
@blp.arguments(TokenRequest)
@blp.response(200, TokenOut)
@blp.doc(security=[])
def issue_token(credentials):
    """Exchange a username and password for a bearer token."""
    user, token, expires_at = service.sign_in(address=client_address(), **credentials)
    commit()
    return {"access_token": token, "role": user.role, "expires_at": expires_at}


@blp.route("/auth/register", methods=["POST"])
@auth_limit
@register_limit
@blp.errors({409: [ShopCode.USERNAME_TAKEN], 429: [ShopCode.RATE_LIMITED]})
@blp.arguments(RegisterRequest)
@blp.response(201, UserOut, location=ReadAt("auth.show_me"))
@blp.doc(security=[])
def register(data):
    """Register a consumer account with a mainland mobile number."""
    user = service.register_consumer(**data)
    commit()
    return user


@blp.route("/auth/logout", methods=["POST"])
@require_role(*ROLES)
@blp.response(204)
def sign_out():
    """Sign out everywhere: this token and every other token and page session of the user end (a new sign-in works)."""
    service.sign_out_everywhere(user=current_user())
    commit()


@blp.route("/users")
class Users(MethodView):
    @require_role("admin", "auditor")
    @blp.arguments(UserQuery, location="query")
    @blp.response(200, page_schema(UserOut))
    def get(self, query):
        """List users, by role, username (exact, any spelling) or active flag (auditors too: they name who created,
        settled or changed what)."""
        return service.list_users(viewer=current_user(), **query)

    @require_role("admin")
    @blp.errors({409: [ShopCode.USERNAME_TAKEN, *SCOPE_CONFLICTS]})
    @blp.arguments(UserCreate)
    @blp.response(201, UserOut, location=ReadAt("auth.UserById", user_id="id"))
    def post(self, data):
        """Create a user with a role and scope (audited)."""
        user = service.create_user(actor=current_user(), **data)
        commit()
        return user


@blp.route("/users/<int:user_id>")
class UserById(MethodView):
    @require_role("admin", "auditor")
    @blp.response(200, UserOut)
    def get(self, user_id):
        """Show a user."""
        return service.get_user(user_id)

    @require_role("admin")
    @blp.errors({409: [ShopCode.CANNOT_DISABLE_SELF, ShopCode.LAST_ACTIVE_ADMIN, *SCOPE_CONFLICTS]})
    @blp.arguments(UserUpdate)
    @blp.response(200, UserOut)
    def patch(self, data, user_id):
        """Disable or enable a user, reset its password, or change its role or scope (audited; its tokens end); not
        an admin's own active flag, role or password (theirs: `POST /users/me/password`, with the current one)."""
        user = service.update_user(user_id=user_id, actor=current_user(), changes=service.UserChanges(**data))
        commit()
        return user


@blp.route("/users/me")
@require_role(*ROLES)
@blp.response(200, UserOut)
def show_me():
    """The signed-in user: username, role and scope."""
    return current_user()


@blp.route("/users/me/password", methods=["POST"])
@auth_limit
@password_limit
@blp.errors({403: [ShopCode.WRONG_PASSWORD], 429: [ShopCode.TOO_MANY_ATTEMPTS, ShopCode.RATE_LIMITED]})
@require_role(*ROLES)
@blp.arguments(PasswordChange)
@blp.response(200, TokenOut)
def change_my_password(data):
    """Change your own password: every earlier token and page session ends, and this client gets a fresh token."""
    user = service.change_own_password(user=current_user(), address=client_address(), **data)
    token, expires_at = security.issue_token(user)  # of the version this change wrote, as sign-in issues one
    commit()
    return {"access_token": token, "role": user.role, "expires_at": expires_at}


@blp.route("/audit/user-changes")
@require_role("admin", "auditor")
@blp.arguments(UserChangeQuery, location="query")
@blp.response(200, page_schema(UserChangeOut))
def list_user_changes(query):
    """List the audited creations and changes of users: who did what to which user, when."""
    return service.list_user_changes(**query)
