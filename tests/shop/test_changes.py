"""A PATCH's changes: what was sent, `None` included, and nothing that was not."""
from __future__ import annotations

import pytest

from catalog.service import ProductChanges
from orders.stores.service import StoreChanges
from suppliers.service import HouseholdChanges


def test_only_the_fields_sent_are_changes_and_none_is_a_value():
    changes = HouseholdChanges(village="新村", bank_account=None)
    assert changes.given() == {"village": "新村", "bank_account": None}
    assert ProductChanges().given() == {}
    assert StoreChanges(bank_account=None).given() == {"bank_account": None}  # clear the payout account


def test_a_field_no_patch_may_change_is_refused_by_the_signature():
    with pytest.raises(TypeError):
        ProductChanges(sku="NEW-SKU")
    with pytest.raises(TypeError):
        HouseholdChanges("新村")  # keywords only
