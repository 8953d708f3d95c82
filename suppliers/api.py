"""Routes: suppliers, their households and benefit links, and the reveal audit log."""
from __future__ import annotations

from flask.views import MethodView

from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.pagination import DatedPageQuery, page_schema
from suppliers import service
from suppliers.errors import SupplierCode
from suppliers.schemas import (
    AccountChangeOut,
    AccountChangeQuery,
    BenefitLinkCreate,
    BenefitLinkEnd,
    BenefitLinkOut,
    BenefitLinkQuery,
    HouseholdChangeOut,
    HouseholdCreate,
    HouseholdOut,
    HouseholdQuery,
    HouseholdUpdate,
    RevealAuditOut,
    RevealAuditQuery,
    RevealQuery,
    SupplierChangeOut,
    SupplierCreate,
    SupplierOut,
    SupplierQuery,
    SupplierUpdate,
)

blp = Blueprint("suppliers", __name__, url_prefix="/api/v1", description="Suppliers, households and benefit links",
                not_found={"supplier_id": SupplierCode.SUPPLIER_NOT_FOUND,
                           "household_id": SupplierCode.HOUSEHOLD_NOT_FOUND,
                           "link_id": SupplierCode.BENEFIT_LINK_NOT_FOUND})


@blp.route("/suppliers")
class Suppliers(MethodView):
    @require_role("admin", "auditor")
    @blp.arguments(SupplierQuery, location="query")
    @blp.response(200, page_schema(SupplierOut))
    def get(self, query):
        """List suppliers."""
        return service.list_suppliers(**query)

    @blp.errors({409: [SupplierCode.USCC_TAKEN, SupplierCode.SUPPLIER_NAME_TAKEN],
                 422: [SupplierCode.COUNTY_NOT_RECIPIENT, ShopCode.REGION_NOT_FOUND, SupplierCode.INVALID_USCC,
                       SupplierCode.INVALID_BANK_ACCOUNT]})
    @require_role("admin")
    @blp.arguments(SupplierCreate)
    @blp.response(201, SupplierOut, location=ReadAt("suppliers.SupplierById", supplier_id="id"))
    def post(self, data):
        """Register a supplier."""
        supplier = service.create_supplier(**data)
        commit()
        return supplier


@blp.route("/suppliers/<int:supplier_id>")
class SupplierById(MethodView):
    @blp.errors({403: [SupplierCode.REVEAL_FORBIDDEN], 422: [SupplierCode.REVEAL_REASON_REQUIRED]})
    @require_role("admin", "coop", "auditor")
    @blp.arguments(RevealQuery, location="query")
    @blp.response(200, SupplierOut)
    def get(self, query, supplier_id):
        """Show a supplier; admins may reveal its bank account with a reason (audited)."""
        supplier = service.show_supplier(supplier_id=supplier_id, user=current_user(), **query)
        commit()
        return supplier

    @blp.errors({409: [SupplierCode.SUPPLIER_NAME_TAKEN],
                 422: [SupplierCode.INVALID_BANK_ACCOUNT, SupplierCode.ACCOUNT_CHANGE_REASON_REQUIRED]})
    @require_role("admin")
    @blp.arguments(SupplierUpdate)
    @blp.response(200, SupplierOut)
    def patch(self, data, supplier_id):
        """Edit, re-rate or deactivate a supplier; each change of a field or rate is kept in its history (with `reason`
        if sent), a bank account change is audited."""
        reason = data.pop("reason", None)
        supplier = service.update_supplier(supplier_id=supplier_id, user=current_user(), reason=reason,
                                           changes=service.SupplierChanges(**data))
        commit()
        return supplier


@blp.route("/suppliers/<int:supplier_id>/history")
@require_role("admin", "coop", "auditor")
@blp.arguments(DatedPageQuery, location="query")
@blp.response(200, page_schema(SupplierChangeOut))
def supplier_history(query, supplier_id):
    """List the changes of a supplier's name, kind, contact, active flag and default agreement rates, who made each and
    when (its bank account's: /audit/account-changes)."""
    return service.supplier_history(supplier_id=supplier_id, supplier_scope=current_user().supplier_id, **query)


@blp.route("/suppliers/<int:supplier_id>/households")
class SupplierHouseholds(MethodView):
    @require_role("admin", "coop", "auditor")
    @blp.arguments(HouseholdQuery, location="query")
    @blp.response(200, page_schema(HouseholdOut))
    def get(self, query, supplier_id):
        """List the households a supplier works with (masked)."""
        return service.list_households(supplier_id=supplier_id, supplier_scope=current_user().supplier_id,
                                       **query)

    @blp.errors({409: [SupplierCode.SUPPLIER_INACTIVE, SupplierCode.HOUSEHOLD_EXISTS,
                       SupplierCode.HOUSEHOLD_CODE_TAKEN, SupplierCode.BANK_ACCOUNT_IN_USE],
                 422: [SupplierCode.COUNTY_NOT_RECIPIENT, ShopCode.REGION_NOT_FOUND, SupplierCode.INVALID_ID_NUMBER,
                       SupplierCode.INVALID_BANK_ACCOUNT],
                 429: [SupplierCode.ID_NUMBER_LOOKUPS_EXHAUSTED]})
    @require_role("admin", "coop")
    @blp.arguments(HouseholdCreate)
    @blp.response(201, HouseholdOut, location=ReadAt("suppliers.HouseholdById", household_id="id"))
    def post(self, data, supplier_id):
        """Register a household under a supplier."""
        user = current_user()
        household = service.register_household(supplier_id=supplier_id, supplier_scope=user.supplier_id,
                                               created_by=user.id, **data)
        commit()
        return household


@blp.route("/households/<int:household_id>")
class HouseholdById(MethodView):
    @blp.errors({403: [SupplierCode.REVEAL_FORBIDDEN], 422: [SupplierCode.REVEAL_REASON_REQUIRED]})
    @require_role("admin", "coop", "auditor")
    @blp.arguments(RevealQuery, location="query")
    @blp.response(200, HouseholdOut)
    def get(self, query, household_id):
        """Show a household (masked); admins may reveal it with a reason (audited)."""
        household = service.show_household(household_id=household_id, user=current_user(), **query)
        commit()
        return household

    @blp.errors({403: [SupplierCode.HOUSEHOLD_READ_ONLY],
                 409: [SupplierCode.SUPPLIER_INACTIVE, SupplierCode.HOUSEHOLD_DEACTIVATED_BY_ADMIN,
                       SupplierCode.BANK_ACCOUNT_IN_USE],
                 422: [SupplierCode.ACCOUNT_CHANGE_REASON_REQUIRED, SupplierCode.INVALID_BANK_ACCOUNT]})
    @require_role("admin", "coop")
    @blp.arguments(HouseholdUpdate)
    @blp.response(200, HouseholdOut)
    def patch(self, data, household_id):
        """Edit or deactivate a household (its registering co-op or an admin); a bank account change is audited."""
        reason = data.pop("reason", None)
        household = service.update_household(household_id=household_id, user=current_user(), reason=reason,
                                             changes=service.HouseholdChanges(**data))
        commit()
        return household


@blp.route("/households/<int:household_id>/history")
@require_role("admin", "coop", "auditor")
@blp.arguments(DatedPageQuery, location="query")
@blp.response(200, page_schema(HouseholdChangeOut))
def household_history(query, household_id):
    """List the changes of a household's fields, who made each and when (its bank account's: /audit/account-changes)."""
    return service.household_history(household_id=household_id, supplier_scope=current_user().supplier_id, **query)


@blp.route("/suppliers/<int:supplier_id>/benefit-links")
class SupplierBenefitLinks(MethodView):
    @require_role("admin", "coop", "auditor")
    @blp.arguments(BenefitLinkQuery, location="query")
    @blp.response(200, page_schema(BenefitLinkOut))
    def get(self, query, supplier_id):
        """List a supplier's benefit links, ended ones included."""
        return service.list_benefit_links(supplier_id=supplier_id, supplier_scope=current_user().supplier_id,
                                          **query)

    @blp.errors({404: [SupplierCode.HOUSEHOLD_NOT_FOUND],
                 409: [SupplierCode.SUPPLIER_INACTIVE, SupplierCode.HOUSEHOLD_INACTIVE,
                       SupplierCode.HOUSEHOLD_CODE_TAKEN, SupplierCode.BENEFIT_LINK_OVERLAPS,
                       SupplierCode.BENEFIT_LINK_BACKDATED],
                 422: [SupplierCode.INVALID_ID_NUMBER],
                 429: [SupplierCode.ID_NUMBER_LOOKUPS_EXHAUSTED]})
    @require_role("admin", "coop")
    @blp.arguments(BenefitLinkCreate)
    @blp.response(201, BenefitLinkOut, location=ReadAt("suppliers.BenefitLinkById", link_id="id"))
    def post(self, data, supplier_id):
        """Link a household to a supplier (another supplier's household: by code and ID number)."""
        user = current_user()
        link = service.create_benefit_link(supplier_id=supplier_id, supplier_scope=user.supplier_id,
                                           created_by=user.id, **data)
        commit()
        return link


@blp.route("/benefit-links/<int:link_id>")
class BenefitLinkById(MethodView):
    @require_role("admin", "coop", "auditor")
    @blp.response(200, BenefitLinkOut)
    def get(self, link_id):
        """Show a benefit link (a co-op: its own supplier's)."""
        return service.get_benefit_link(link_id=link_id, supplier_scope=current_user().supplier_id)

    @blp.errors({409: [SupplierCode.SUPPLIER_INACTIVE, SupplierCode.BENEFIT_LINK_ENDED,
                       SupplierCode.BENEFIT_LINK_BACKDATED]})
    @require_role("admin", "coop")
    @blp.arguments(BenefitLinkEnd)
    @blp.response(200, BenefitLinkOut)
    def patch(self, data, link_id):
        """End a benefit link on a date (who ended it and when are kept)."""
        link = service.end_benefit_link(link_id=link_id, user=current_user(), **data)
        commit()
        return link


@blp.route("/audit/reveals")
@require_role("admin", "auditor")
@blp.arguments(RevealAuditQuery, location="query")
@blp.response(200, page_schema(RevealAuditOut))
def list_reveals(query):
    """List the audited reveals of personal data."""
    return service.list_reveals(**query)


@blp.route("/audit/account-changes")
@require_role("admin", "auditor")
@blp.arguments(AccountChangeQuery, location="query")
@blp.response(200, page_schema(AccountChangeOut))
def list_account_changes(query):
    """List the audited changes of households' and suppliers' bank accounts."""
    return service.list_account_changes(**query)
