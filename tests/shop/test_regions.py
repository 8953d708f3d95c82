"""Reference data: regions, pairings on a date, admin changes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from orders import outbox
from shop.clock import today
from shop.db import db, utcnow
from shop.regions.service import load_reference_data
from tests.orders.ledger.test_attribution import _pay_online, _sell_at_the_counter, make_world, pay_pickup
from tests.parallel import second_while_first_uncommitted
from tests.shop.test_errors import assert_error


def names(items, key):
    """The names of a list of pairings' `key` side."""
    return sorted(item[key]["name"] for item in items)


def test_shunde_is_paired_with_meigu_jinyang_and_leibo(client):
    response = client.get("/api/v1/pairings?donor=440606")
    assert response.status_code == 200
    assert names(response.json["items"], "recipient") == sorted(["美姑县", "金阳县", "雷波县"])
    assert {p["program"] for p in response.json["items"]} == {"east-west cooperation"}


def test_zhaojue_is_paired_with_chancheng(client):
    items = client.get("/api/v1/pairings?recipient=513431").json["items"]
    assert names(items, "donor") == ["禅城区"]


def test_liangshan_counties_by_parent_with_cursor_pagination(client):
    seen, cursor = [], None
    while True:
        url = "/api/v1/regions?level=county&parent=513400&limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).json
        seen += [region["code"] for region in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 17 == len(set(seen))
    assert seen == sorted(seen)
    assert "513431" in seen and "520502" not in seen


def test_regions_without_a_gb_code_use_the_prefecture_slug_key(client):
    response = client.get("/api/v1/regions/520500-BLDJ")
    assert response.status_code == 200
    assert response.json == {"code": "520500-BLDJ", "name": "百里杜鹃管理区", "level": "county",
                             "parent_code": "520500", "side": "recipient"}


def test_donor_and_recipient_sides_come_from_the_shipped_data(client):
    assert client.get("/api/v1/regions/440606").json["side"] == "donor"
    assert client.get("/api/v1/regions/513437").json["side"] == "recipient"
    assert_error(client.get("/api/v1/regions/999999"), 404, "region_not_found")


def test_admin_ends_a_pairing_and_it_disappears_from_later_dates(client, login):
    admin = login("admin")
    pairing = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"][0]
    ended = client.patch(f"/api/v1/pairings/{pairing['id']}", headers=admin, json={"valid_until": "2021-02-28"})
    assert ended.status_code == 200 and ended.json["valid_until"] == "2021-02-28"
    before = client.get("/api/v1/pairings?donor=440606&on=2021-02-28").json["items"]
    after = client.get("/api/v1/pairings?donor=440606&on=2021-03-01").json["items"]
    assert "雷波县" in names(before, "recipient") and "雷波县" not in names(after, "recipient")


def test_admin_adds_a_new_pairing_but_not_an_overlapping_one(client, login):
    admin = login("admin")
    body = {"donor_code": "440604", "recipient_code": "513437", "valid_from": "2021-03-01",
            "source": "2021 re-pairing"}
    created = client.post("/api/v1/pairings", headers=admin, json=body)
    assert created.status_code == 201 and created.json["donor"]["name"] == "禅城区"
    assert_error(client.post("/api/v1/pairings", headers=admin, json=body), 409, "pairing_overlaps")
    on_day = client.get("/api/v1/pairings?recipient=513437&on=2026-11-01").json["items"]
    assert names(on_day, "donor") == ["禅城区", "顺德区"]


def test_pairings_must_join_a_donor_to_a_recipient_county(client, login):
    response = client.post("/api/v1/pairings", headers=login("admin"), json={
        "donor_code": "513431", "recipient_code": "440606", "valid_from": "2022-01-01",
        "valid_until": "2021-01-01"})
    details = assert_error(response, 422, "validation_error")["details"]
    assert set(details) == {"donor_code", "recipient_code", "valid_until"}


def test_unknown_pairing_cannot_be_ended_nor_before_it_starts(client, login):
    admin = login("admin")
    assert_error(client.patch("/api/v1/pairings/999", headers=admin, json={"valid_until": "2030-01-01"}),
                 404, "pairing_not_found")
    assert_error(client.patch("/api/v1/pairings/1", headers=admin, json={"valid_until": "2000-01-01"}),
                 422, "validation_error")


def test_admin_adds_a_region_after_a_reorganisation(client, login):
    admin = login("admin")
    body = {"code": "520581", "name": "黔西市", "level": "county", "parent_code": "520500", "side": "recipient"}
    assert client.post("/api/v1/regions", headers=admin, json=body).status_code == 201
    assert client.get("/api/v1/regions/520581").json["name"] == "黔西市"
    assert_error(client.post("/api/v1/regions", headers=admin, json=body), 409, "region_exists")
    orphan = {**body, "code": "520599", "parent_code": None}
    assert_error(client.post("/api/v1/regions", headers=admin, json=orphan), 422, "validation_error")
    bad_code = {**body, "code": "52-0581"}
    assert "code" in assert_error(client.post("/api/v1/regions", headers=admin, json=bad_code),
                                  422, "validation_error")["details"]


def test_a_new_region_named_like_another_under_its_parent_is_refused(client, login):
    """Pickers and pairing reports show a region by its name: a second 昭觉县 under 凉山州 (typed again, with a space or
    an invisible character) would be two counties read as one, households and sales split between them; it is
    refused naming the region that has the name. The same name under another parent is another region."""
    admin = login("admin")
    for name in ("昭觉县", "昭觉 县", "昭\u200b觉县", "昭觉县　"):
        body = {"code": "513498", "name": name, "level": "county", "parent_code": "513400", "side": "recipient"}
        response = client.post("/api/v1/regions", headers=admin, json=body)
        assert assert_error(response, 409, "region_exists")["details"] == {
            "name": ["Another region under 513400 is named 昭觉县 (513431), which reads alike."]}
    assert client.get("/api/v1/regions/513498").status_code == 404
    province = {"code": "450000", "name": "四 川 省", "level": "province", "parent_code": None}
    assert assert_error(client.post("/api/v1/regions", headers=admin, json=province), 409, "region_exists")[
        "details"] == {"name": ["Another region is named 四川省 (510000), which reads alike."]}
    elsewhere = {"code": "520599", "name": "昭觉县", "level": "county", "parent_code": "520500", "side": "recipient"}
    assert client.post("/api/v1/regions", headers=admin, json=elsewhere).status_code == 201


@pytest.mark.parametrize(("code", "level", "parent", "field"), [
    ("440699", "county", "513400", "code"),        # a Foshan code under Liangshan
    ("513498", "county", "513431", "parent_code"),  # a county under a county
    ("519900", "province", "513400", "parent_code"),  # a province with a parent
    ("000000", "prefecture", "510000", "code"),     # not of its province
    ("513400-ZZ", "county", "440600", "code"),      # a slug of another prefecture
    ("513500", "prefecture", "513400", "parent_code"),  # a prefecture under a prefecture
])
def test_a_new_region_must_fit_under_its_parent(client, login, code, level, parent, field):
    body = {"code": code, "name": "错区", "level": level, "parent_code": parent, "side": "recipient"}
    response = client.post("/api/v1/regions", headers=login("admin"), json=body)
    assert field in assert_error(response, 422, "validation_error")["details"]
    assert client.get(f"/api/v1/regions/{code}").status_code == 404


@pytest.mark.parametrize("code", ["000000", "990000", "100000", "240000", "910000"])
def test_a_new_province_code_is_one_of_gb_t_2260s_province_prefixes(client, login, code):
    """A province's code is PP0000 with PP a GB/T 2260 province prefix (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71,
    81, 82): 000000 or 990000 names no province, and every prefecture and county under it would inherit the error."""
    body = {"code": code, "name": "错省", "level": "province", "parent_code": None}
    response = client.post("/api/v1/regions", headers=login("admin"), json=body)
    assert "code" in assert_error(response, 422, "validation_error")["details"]
    assert client.get(f"/api/v1/regions/{code}").status_code == 404
    guangxi = {"code": "450000", "name": "广西壮族自治区", "level": "province", "parent_code": None}
    assert client.post("/api/v1/regions", headers=login("admin"), json=guangxi).status_code == 201


def test_a_pairings_dates_lie_between_the_cooperations_start_and_ten_years_ahead(client, login):
    """East-west cooperation began in 1996 and is planned in five-year rounds: a pairing starting before 1996 or
    starting or ending more than ten years from today is a typing error (2099 for 2029), refused naming the field."""
    admin, ahead = login("admin"), today() + timedelta(days=3653)
    body = {"donor_code": "440604", "recipient_code": "513437", "valid_from": "2021-03-01"}
    for field, day in (("valid_from", "1995-12-31"), ("valid_from", ahead.isoformat()),
                       ("valid_until", "2099-12-31"), ("valid_until", ahead.isoformat())):
        response = client.post("/api/v1/pairings", headers=admin, json={**body, field: day})
        assert field in assert_error(response, 422, "validation_error")["details"], (field, day)
    pairing = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"][0]
    response = client.patch(f"/api/v1/pairings/{pairing['id']}", headers=admin, json={"valid_until": "2099-12-31"})
    assert "valid_until" in assert_error(response, 422, "validation_error")["details"]
    within = (today() + timedelta(days=3000)).isoformat()
    assert client.post("/api/v1/pairings", headers=admin, json={**body, "valid_until": within}).status_code == 201


def test_a_new_regions_unknown_parent_is_a_422_naming_the_field(client, login):
    body = {"code": "513499", "name": "错区", "level": "county", "parent_code": "999900", "side": "recipient"}
    response = client.post("/api/v1/regions", headers=login("admin"), json=body)
    assert assert_error(response, 422, "region_not_found")["details"] == {"parent_code": ["No region with this code."]}
    assert client.get("/api/v1/regions/513499").status_code == 404


def test_loading_reference_data_twice_adds_nothing(app):
    report = load_reference_data()
    assert (report.regions_added, report.pairings_added, report.changes) == (0, 0, [])


def test_bad_cursor_is_rejected(client):
    assert_error(client.get("/api/v1/regions?cursor=not-a-cursor"), 400, "invalid_cursor")


@pytest.mark.parametrize("spelling", ["５１３４３１", "513431%E2%80%8B", "%20513431"])
def test_any_spelling_of_a_region_code_finds_the_region_in_paths_and_filters(client, spelling):
    assert client.get(f"/api/v1/regions/{spelling}").json["code"] == "513431"
    assert client.get(f"/api/v1/products?county={spelling}").status_code == 200
    assert client.get(f"/api/v1/pairings?recipient={spelling}").json["items"][0]["recipient"]["code"] == "513431"


def test_ending_a_pairing_keeps_who_ended_it_and_when(client, login):
    admin = login("admin")
    pairing = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"][0]
    assert pairing["ended_at"] is None and "ended_by" not in pairing
    ended = client.patch(f"/api/v1/pairings/{pairing['id']}", headers=admin, json={"valid_until": "2021-02-28"})
    me = client.get("/api/v1/users/me", headers=admin).json
    assert ended.status_code == 200 and ended.json["ended_by"] == me["id"] and ended.json["ended_at"]
    listed = client.get("/api/v1/pairings?donor=440606&recipient=513437").json["items"][0]
    assert listed["ended_at"] == ended.json["ended_at"]
    assert "ended_by" not in listed  # the public read shows no user's id
    shown = client.get(f"/api/v1/pairings/{pairing['id']}").json
    assert "ended_by" not in shown and shown["ended_at"] == ended.json["ended_at"]


def test_a_pairing_cannot_end_before_a_sale_it_covers_and_a_mistaken_end_can_be_undone(client, login):
    """Ending 禅城→昭觉 before today's sale would silently turn that sale's report row unpaired: a 409, as a dividend
    link's end is; ended on the sale's day it is fine, and clearing the end reopens it while no other pairing of
    the two regions overlaps it."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    db.session.commit()
    pay_pickup(client, world, 1)
    admin = login("admin")
    pairing_id = client.get("/api/v1/pairings?donor=440604&recipient=513431").json["items"][0]["id"]
    url = f"/api/v1/pairings/{pairing_id}"

    backdated = client.patch(url, headers=admin, json={"valid_until": (today - timedelta(days=1)).isoformat()})

    details = assert_error(backdated, 409, "pairing_backdated")["details"]
    assert details["last_sale_date"] == today.isoformat() and "valid_until" in details
    assert client.get(url).json["valid_until"] is None
    ended = client.patch(url, headers=admin, json={"valid_until": today.isoformat()})
    assert ended.status_code == 200 and ended.json["valid_until"] == today.isoformat()

    reopened = client.patch(url, headers=admin, json={"valid_until": None})

    assert reopened.status_code == 200 and reopened.json["valid_until"] is None and reopened.json["ended_by"]
    assert client.get(url).json["valid_until"] is None
    assert client.patch(url, headers=admin, json={"valid_until": today.isoformat()}).status_code == 200
    tomorrow = (today + timedelta(days=1)).isoformat()
    successor = client.post("/api/v1/pairings", headers=admin, json={
        "donor_code": "440604", "recipient_code": "513431", "valid_from": tomorrow, "source": "续签"})
    assert successor.status_code == 201, successor.json
    assert_error(client.patch(url, headers=admin, json={"valid_until": None}), 409, "pairing_overlaps")
    assert client.get(url).json["valid_until"] == today.isoformat()


def test_a_pairing_ended_before_its_sales_began_can_end_earlier_still(client, login):
    """Only the sales a pairing covers hold its end: 顺德's sales of 昭觉 produce (no pairing) do not."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)  # its store is in 顺德, not paired with 昭觉
    pay_pickup(client, world, 1)
    pairing_id = client.get("/api/v1/pairings?donor=440604&recipient=513431").json["items"][0]["id"]

    ended = client.patch(f"/api/v1/pairings/{pairing_id}", headers=login("admin"), json={"valid_until": "2025-12-31"})

    assert ended.status_code == 200 and ended.json["valid_until"] == "2025-12-31"


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["payment", "end"])
@pytest.mark.parametrize("pay", [_pay_online, _sell_at_the_counter], ids=["online", "counter"])
def test_a_pairing_ended_while_a_sale_it_covers_is_paid_is_refused_or_ends_before_it(pg_app, first, pay):
    """The end's check of the pairing's last sale and a sale becoming paid are serialised per donor region: an end
    waiting for an uncommitted payment of its day sees it and is refused (the sale stays paired); a payment waiting
    for an uncommitted end is made after it, so the end never uncovers a sale dated within the pairing."""
    from shop.auth.models import User
    from shop.regions.models import Pairing
    from shop.regions.service import set_pairing_end
    from tests.factories import UserFactory

    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    admin = UserFactory(role="admin")
    db.session.commit()
    pairing_id = db.session.scalar(select(Pairing.id).where(Pairing.donor_code == "440604",
                                                           Pairing.recipient_code == "513431"))
    admin_id, yesterday = admin.id, today - timedelta(days=1)
    paying = pay(pg_app, world)

    def end() -> str:
        return set_pairing_end(pairing_id=pairing_id, valid_until=yesterday, actor=db.session.get(User, admin_id))\
            .valid_until.isoformat()

    second = second_while_first_uncommitted(pg_app, *((paying, end) if first == "payment" else (end, paying)))

    assert second == ("pairing_backdated" if first == "payment" else "paid")
    db.session.expire_all()
    ended = db.session.get(Pairing, pairing_id).valid_until
    assert ended == (None if first == "payment" else yesterday)


def test_a_pairing_cannot_start_before_a_sale_it_would_newly_cover(client, login):
    """A new pairing of 顺德 and 昭觉 from yesterday would turn today's paid sale (reported unpaired) paired: a 409
    naming the sale's date; one starting tomorrow, or ending before the sale, is fine."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)  # its store is in 顺德, not paired with 昭觉
    pay_pickup(client, world, 1)
    admin = login("admin")
    body = {"donor_code": "440606", "recipient_code": "513431", "source": "补签"}

    backdated = client.post("/api/v1/pairings", headers=admin,
                            json={**body, "valid_from": (today - timedelta(days=1)).isoformat()})

    details = assert_error(backdated, 409, "pairing_backdated")["details"]
    assert details["last_sale_date"] == today.isoformat() and "valid_from" in details
    assert client.get("/api/v1/pairings?donor=440606&recipient=513431").json["items"] == []
    before = {**body, "valid_from": "2020-01-01", "valid_until": (today - timedelta(days=1)).isoformat()}
    assert client.post("/api/v1/pairings", headers=admin, json=before).status_code == 201
    after = {**body, "valid_from": (today + timedelta(days=1)).isoformat()}
    assert client.post("/api/v1/pairings", headers=admin, json=after).status_code == 201


def test_an_ended_pairing_cannot_be_extended_or_reopened_over_a_sale_made_after_its_end(client, login):
    """禅城→昭觉 ended yesterday, today's sale is reported unpaired: reopening it, or ending it on today, would turn
    that sale paired (409, the first such sale's date named); an end still before the sale is fine."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    db.session.commit()
    admin = login("admin")
    pairing_id = client.get("/api/v1/pairings?donor=440604&recipient=513431").json["items"][0]["id"]
    url, yesterday = f"/api/v1/pairings/{pairing_id}", today - timedelta(days=1)
    assert client.patch(url, headers=admin, json={"valid_until": (today - timedelta(days=2)).isoformat()}).status_code \
        == 200
    pay_pickup(client, world, 1)

    for valid_until in (None, today.isoformat(), (today + timedelta(days=30)).isoformat()):
        refused = client.patch(url, headers=admin, json={"valid_until": valid_until})
        details = assert_error(refused, 409, "pairing_backdated")["details"]
        assert details["first_sale_date"] == today.isoformat() and "valid_until" in details

    assert client.get(url).json["valid_until"] == (today - timedelta(days=2)).isoformat()
    assert client.patch(url, headers=admin, json={"valid_until": yesterday.isoformat()}).status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["payment", "pairing"])
@pytest.mark.parametrize("pay", [_pay_online, _sell_at_the_counter], ids=["online", "counter"])
def test_a_pairing_created_while_a_sale_of_its_days_is_paid_is_refused_or_made_before_it(pg_app, first, pay):
    """A new pairing's check of its days' sales and a sale becoming paid are serialised per donor region: a pairing
    from yesterday waiting for an uncommitted payment of today sees it and is refused (the sale stays unpaired); a
    payment waiting for an uncommitted pairing is made after it, so the pairing never turns a reported sale paired."""
    from shop.regions.models import Pairing
    from shop.regions.service import create_pairing

    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)  # its store is in 顺德, not paired with 昭觉
    paying = pay(pg_app, world)

    def pair() -> str:
        made = create_pairing(donor_code="440606", recipient_code="513431", program="east-west cooperation",
                              valid_from=today - timedelta(days=1), valid_until=None, source=None)
        return made.valid_from.isoformat()

    second = second_while_first_uncommitted(pg_app, *((paying, pair) if first == "payment" else (pair, paying)))

    assert second == ("pairing_backdated" if first == "payment" else "paid")
    db.session.expire_all()
    made = db.session.scalars(select(Pairing.id).where(Pairing.donor_code == "440606",
                                                      Pairing.recipient_code == "513431")).all()
    assert len(made) == (0 if first == "payment" else 1)


def test_a_change_that_leaves_every_sale_paired_as_it_was_is_fine(client, login):
    """禅城→昭觉 in a second programme over today's sale's day changes no report row (it was paired already), nor
    does ending the first pairing before the sale while the second still covers it; ending both would."""
    today = outbox.sale_date_of(utcnow())
    world = make_world(today=today)
    world["store"].district_code = "440604"  # 禅城, paired with 昭觉 (the world's county)
    db.session.commit()
    pay_pickup(client, world, 1)
    admin = login("admin")
    first_id = client.get("/api/v1/pairings?donor=440604&recipient=513431").json["items"][0]["id"]
    yesterday = (today - timedelta(days=1)).isoformat()

    second = client.post("/api/v1/pairings", headers=admin, json={
        "donor_code": "440604", "recipient_code": "513431", "program": "rural revitalisation",
        "valid_from": "2021-01-01", "source": "乡村振兴"})
    assert second.status_code == 201, second.json
    ended = client.patch(f"/api/v1/pairings/{first_id}", headers=admin, json={"valid_until": yesterday})
    assert ended.status_code == 200, ended.json

    refused = client.patch(f"/api/v1/pairings/{second.json['id']}", headers=admin, json={"valid_until": yesterday})
    assert assert_error(refused, 409, "pairing_backdated")["details"]["last_sale_date"] == today.isoformat()
