"""Reference data: loading the shipped files, region look-ups and pairings on a date."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from shop.auth.models import User
from shop.caching import invalidate_after_commit
from shop.clock import today
from shop.db import db, hold_sales, lock_on_sqlite, utcnow, violates
from shop.errors import Conflict, NotFound, ShopCode, ValidationError
from shop.fields import name_key
from shop.pagination import paginate
from shop.regions.models import OVERLAP_CONSTRAINT, Pairing, Region

DATA_DIR = Path(__file__).parent / "data"
CACHE_NAMESPACE = "regions"
# GB/T 2260's province prefixes: a province's code is one of them, then 0000
PROVINCE_PREFIXES = frozenset({*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55),
                               *range(61, 66), 71, 81, 82})
COOPERATION_BEGAN = date(1996, 1, 1)  # east-west poverty-alleviation cooperation: no pairing starts before it
PLANNED_AHEAD = timedelta(days=3652)  # ten years, two five-year rounds: no pairing starts or ends later from today


def _side_of(row: dict, rows_by_code: dict[str, dict]) -> str | None:
    """Infer donor/recipient from the shipped notes of a row and its parent."""
    notes = [row.get("note") or "", (rows_by_code.get(row.get("parent_code") or "") or {}).get("note") or ""]
    if any(note.startswith("donor") for note in notes):
        return "donor"
    if any(note.startswith("recipient") for note in notes):
        return "recipient"
    return None


@dataclass
class ReferenceLoad:
    """What loading the shipped reference data did: counts, a line per region renamed or pairing end date applied,
    and a line per pair of regions whose shipped pairing changes were skipped (they would change sales' report rows)."""

    regions_added: int = 0
    pairings_added: int = 0
    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was added, how many existing rows changed and how many shipped changes were skipped."""
        return (f"{self.regions_added} regions and {self.pairings_added} pairings added, "
                f"{len(self.changes)} existing rows changed"
                + (f", {len(self.skipped)} shipped changes skipped" if self.skipped else ""))


def _shipped_pairings() -> list[tuple[int, dict]]:
    """The shipped pairings file's rows with their line numbers, dates parsed; a date that does not parse, or an end
    before its start, is a one-line error naming the file's line."""
    shipped = []
    with open(DATA_DIR / "pairings.csv", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                start = date.fromisoformat(row["valid_from"])
                end = date.fromisoformat(row["valid_until"]) if row["valid_until"] else None
            except (TypeError, ValueError) as exc:
                raise ValidationError(f"pairings.csv line {line}: a date is not YYYY-MM-DD; nothing was loaded",
                                      details={"line": line}) from exc
            if end is not None and end < start:
                raise ValidationError(f"pairings.csv line {line}: it ends ({end}) before it starts ({start}); "
                                      "nothing was loaded", details={"line": line})
            shipped.append((line, {**row, "valid_from": start, "valid_until": end}))
    return shipped


def _load_regions(report: ReferenceLoad) -> None:
    """Add the shipped regions that are missing and give existing ones their shipped names."""
    with open(DATA_DIR / "regions.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_code = {row["code"]: row for row in rows}
    existing = {region.code: region for region in db.session.scalars(select(Region))}
    for row in rows:  # the file lists parents before children
        region = existing.get(row["code"])
        if region is None:
            db.session.add(Region(code=row["code"], name=row["name"], level=row["level"],
                                  parent_code=row["parent_code"] or None, side=_side_of(row, by_code),
                                  note=row["note"] or None))
            report.regions_added += 1
        elif region.name != row["name"]:
            report.changes.append(f"region {region.code} renamed: {region.name} -> {row['name']}")
            region.name = row["name"]
    db.session.flush()


def _shipped_overlap(line: int, row: dict, other: int) -> Conflict:
    """The error of a shipped pairing (on `line` of the file) that would overlap pairing `other`."""
    until = row["valid_until"] or "open"
    return Conflict(f"pairings.csv line {line}: {row['donor_code']} -> {row['recipient_code']} ({row['program']}, "
                    f"{row['valid_from']} to {until}) would overlap pairing {other}; nothing was loaded",
                    code=ShopCode.PAIRING_OVERLAPS, details={"line": line, "pairing_id": other})


def _load_pairings(report: ReferenceLoad) -> None:
    """Give existing pairings the shipped end dates (an end the file does not give is left as it is), then add the
    shipped pairings that are missing; a shipped period that would overlap another pairing of the same regions and
    programme is refused (`_overlapping`, the rule of `create_pairing`). The changes of two regions' pairings that
    would turn a sale's report row paired or unpaired (`_keep_sales_report_rows`, the rule of the API) are skipped
    together and reported."""
    lock_on_sqlite("UPDATE regions SET code = code WHERE code = (SELECT MIN(code) FROM regions)")  # as create_pairing
    existing = {(p.donor_code, p.recipient_code, p.valid_from): p for p in db.session.scalars(select(Pairing))}
    shipped = _shipped_pairings()
    ends = [(line, row, pairing) for line, row in shipped
            if (pairing := existing.get((row["donor_code"], row["recipient_code"], row["valid_from"]))) is not None
            and row["valid_until"] is not None and row["valid_until"] != pairing.valid_until]
    added = [(line, row) for line, row in shipped
             if (row["donor_code"], row["recipient_code"], row["valid_from"]) not in existing]
    skipped = _skipped_for_sales(report, ends, added)
    for line, row, pairing in ends:
        if (pairing.donor_code, pairing.recipient_code) in skipped:
            continue
        other = _overlapping(donor_code=pairing.donor_code, recipient_code=pairing.recipient_code,
                             program=pairing.program, valid_from=pairing.valid_from, valid_until=row["valid_until"],
                             excluding=pairing.id)
        if other is not None:
            raise _shipped_overlap(line, row, other)
        report.changes.append(f"pairing {pairing.id} {pairing.donor_code} -> {pairing.recipient_code} from "
                              f"{pairing.valid_from}: ends {row['valid_until']} (was {pairing.valid_until or 'open'})")
        pairing.valid_until, pairing.ended_at, pairing.ended_by = row["valid_until"], utcnow(), None  # the command line
        db.session.flush()
    for line, row in added:
        if (row["donor_code"], row["recipient_code"]) in skipped:
            continue
        other = _overlapping(donor_code=row["donor_code"], recipient_code=row["recipient_code"],
                             program=row["program"], valid_from=row["valid_from"], valid_until=row["valid_until"])
        if other is not None:
            raise _shipped_overlap(line, row, other)
        db.session.add(Pairing(donor_code=row["donor_code"], recipient_code=row["recipient_code"],
                               program=row["program"], valid_from=row["valid_from"], valid_until=row["valid_until"],
                               source=row["source"] or None))
        db.session.flush()
        report.pairings_added += 1


def _skipped_for_sales(report: ReferenceLoad, ends: list[tuple[int, dict, Pairing]],
                       added: list[tuple[int, dict]]) -> set[tuple[str, str]]:
    """The (donor, recipient) pairs whose shipped end dates (`ends`) and new pairings (`added`) together would turn a
    sale's report row paired or unpaired (`_keep_sales_report_rows`), each reported with its lines of the file."""
    planned: dict[tuple[str, str], dict[object, Period]] = {}
    lines: dict[tuple[str, str], list[int]] = {}
    for line, row, pairing in ends:
        key = (pairing.donor_code, pairing.recipient_code)
        planned.setdefault(key, {})[pairing.id] = (pairing.valid_from, row["valid_until"])
        lines.setdefault(key, []).append(line)
    for line, row in added:
        key = (row["donor_code"], row["recipient_code"])
        planned.setdefault(key, {})[f"line {line}"] = (row["valid_from"], row["valid_until"])
        lines.setdefault(key, []).append(line)
    skipped = set()
    for (donor_code, recipient_code), periods in sorted(planned.items()):
        try:
            _keep_sales_report_rows(donor_code=donor_code, recipient_code=recipient_code, periods=periods,
                                    field="valid_from")
        except Conflict as refused:
            if refused.code != ShopCode.PAIRING_BACKDATED:
                raise
            skipped.add((donor_code, recipient_code))
            where = ", ".join(str(line) for line in sorted(lines[(donor_code, recipient_code)]))
            report.skipped.append(f"pairings {donor_code} -> {recipient_code} (pairings.csv line {where}) not "
                                  f"applied: sales dated {refused.details['first_sale_date']} to "
                                  f"{refused.details['last_sale_date']} would change their pairing report rows")
    return skipped


def load_reference_data() -> ReferenceLoad:
    """Bring the database to the shipped regions and pairings: add the missing ones, apply the shipped region names
    and pairing end dates to existing rows. A shipped pairing that would overlap another is a `pairing_overlaps`
    conflict (the caller rolls back: nothing is written)."""
    report = ReferenceLoad()
    _load_regions(report)
    try:
        _load_pairings(report)
    except IntegrityError as error:  # PostgreSQL's exclusion constraint: a pairing added meanwhile
        if not violates(error, OVERLAP_CONSTRAINT):
            raise
        raise Conflict("A shipped pairing would overlap a pairing added meanwhile; nothing was loaded",
                       code=ShopCode.PAIRING_OVERLAPS) from None
    if report.regions_added or report.pairings_added or report.changes:
        invalidate_after_commit(CACHE_NAMESPACE)
    return report


def get_region(code: str) -> Region:
    """The region with `code`, or `NotFound`."""
    region = db.session.get(Region, code)
    if region is None:
        raise NotFound(f"No region with code {code}.", code=ShopCode.REGION_NOT_FOUND)
    return region


def region_named(code: str, *, field: str) -> Region:
    """The region a request body names in `field`; an unknown code is that field's error (422
    `region_not_found`), not a 404 that would read as if the resource addressed were missing."""
    region = db.session.get(Region, code)
    if region is None:
        raise ValidationError(f"No region with code {code}.", code=ShopCode.REGION_NOT_FOUND,
                              details={field: ["No region with this code."]})
    return region


def is_recipient_county(code: str) -> bool:
    """Whether `code` is a county-level unit on the recipient side."""
    region = db.session.get(Region, code)
    return region is not None and region.level == "county" and region.side == "recipient"


def recipient_counties() -> list[tuple[Region, str]]:
    """Every county-level unit on the recipient side with its prefecture's name, by code."""
    prefecture = aliased(Region)
    return [(county, name) for county, name in db.session.execute(
        select(Region, prefecture.name).join(prefecture, prefecture.code == Region.parent_code)
        .where(Region.level == "county", Region.side == "recipient").order_by(Region.code))]


def list_regions(*, level: str | None, parent: str | None, limit: int, cursor: str | None) -> dict:
    """A page of regions, filtered by level and parent, ordered by code."""
    query = select(Region)
    if level:
        query = query.where(Region.level == level)
    if parent:
        query = query.where(Region.parent_code == parent)
    return paginate(query, keys=[Region.code], limit=limit, cursor=cursor)


def duplicate_region(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a region whose code exists."""
    return Conflict(f"Region {row['code']} already exists.", code=ShopCode.REGION_EXISTS)


def create_region(*, code: str, name: str, level: str, parent_code: str | None, side: str | None,
                  note: str | None = None) -> Region:
    """Add a region (e.g. a new district after a reorganisation), where GB/T 2260 puts it (`_misplaced`)."""
    if db.session.get(Region, code) is not None:
        raise duplicate_region({"code": code})
    parent = None if parent_code is None else region_named(parent_code, field="parent_code")
    problems = _misplaced(code, level, parent)
    if problems:
        raise ValidationError("The region does not fit under its parent.", details=problems)
    _refuse_alike_sibling(code, name, parent_code)
    region = Region(code=code, name=name, level=level, parent_code=parent_code, side=side, note=note)
    db.session.add(region)
    db.session.flush()
    invalidate_after_commit(CACHE_NAMESPACE)
    return region


def _refuse_alike_sibling(code: str, name: str, parent_code: str | None) -> None:
    """Refuse a name that reads like another region's under the same parent (`shop.fields.name_key`: pickers and
    pairing reports show a region by its name), `region_exists` 409 naming that region. The parent's row is held
    first (PostgreSQL: FOR NO KEY UPDATE; SQLite: the write lock), so of two alike regions added at once the second
    waits for the first, then finds it (on PostgreSQL a province, with no parent, is not held): the same region
    added twice at once, the second is told so as when it is added again later."""
    lock_on_sqlite("UPDATE regions SET code = code WHERE code = (SELECT MIN(code) FROM regions)")
    if parent_code is not None:
        db.session.execute(select(Region.code).where(Region.code == parent_code).with_for_update(key_share=True))
    key = name_key(name)
    siblings = select(Region).where(Region.parent_code == parent_code if parent_code else Region.parent_code.is_(None))
    alike = next((region for region in db.session.scalars(siblings) if name_key(region.name) == key), None)
    if alike is not None and alike.code == code:
        raise duplicate_region({"code": code})
    if alike is not None:
        under = f" under {parent_code}" if parent_code else ""
        raise Conflict(f"A region{under} is already named {alike.name}.", code=ShopCode.REGION_EXISTS,
                       details={"name": [f"Another region{under} is named {alike.name} ({alike.code}), which reads "
                                         "alike."]})


def _misplaced(code: str, level: str, parent: Region | None) -> dict[str, list[str]]:
    """What is wrong with a new region's place (GB/T 2260): a province has no parent and a code of a province prefix
    (`PROVINCE_PREFIXES`) then 0000; a
    prefecture sits under a province and has its province's first 2 digits, 2 of its own, then 00; a county sits
    under a prefecture and has the prefecture's first 4 digits and 2 of its own (not 00), or is
    `<prefecture code>-<SLUG>`."""
    if level == "province":
        if parent is not None:
            return {"parent_code": ["A province has no parent."]}
        fits = code.isdigit() and code.endswith("0000") and int(code[:2]) in PROVINCE_PREFIXES
        return {} if fits else {"code": ["A province's code is a GB/T 2260 province prefix (11 to 82) then 0000."]}
    above = {"prefecture": "province", "county": "prefecture"}[level]
    if parent is None or parent.level != above:
        return {"parent_code": [f"A {level} sits under a {above}."]}
    if level == "prefecture":
        fits = code.isdigit() and code[:2] == parent.code[:2] and code[2:4] != "00" and code[4:] == "00"
    else:
        fits = code.startswith(parent.code + "-") or (code.isdigit() and code[:4] == parent.code[:4]
                                                       and code[4:] != "00")
    return {} if fits else {"code": [f"Does not fit under {parent.code} ({parent.name})."]}


def _outside_cooperation(**days: date | None) -> dict[str, list[str]]:
    """Which of a pairing's dates lie outside the cooperation's realistic span: from COOPERATION_BEGAN to PLANNED_AHEAD
    after today (2099 typed for 2029 is an error, not a plan)."""
    latest = today() + PLANNED_AHEAD
    return {name: [f"Must be a date from {COOPERATION_BEGAN} to {latest} (ten years ahead)."]
            for name, day in days.items() if day is not None and not COOPERATION_BEGAN <= day <= latest}


def valid_on(on: date):
    """The SQL condition: the pairing is valid on `on` (both ends inclusive)."""
    return (Pairing.valid_from <= on) & or_(Pairing.valid_until.is_(None), Pairing.valid_until >= on)


def list_pairings(*, donor: str | None, recipient: str | None, on: date | None,
                  limit: int, cursor: str | None) -> dict:
    """A page of pairings, filtered by donor, recipient and the date they are valid on."""
    query = select(Pairing)
    if donor:
        query = query.where(Pairing.donor_code == donor)
    if recipient:
        query = query.where(Pairing.recipient_code == recipient)
    if on:
        query = query.where(valid_on(on))
    return paginate(query, keys=[Pairing.id], limit=limit, cursor=cursor)


def create_pairing(*, donor_code: str, recipient_code: str, program: str, valid_from: date,
                   valid_until: date | None, source: str | None) -> Pairing:
    """Add a pairing; it must join a donor to a recipient county, not overlap the same pair and programme, and cover no
    day with a sale of the pair (paid or since refunded) reported unpaired so far (`pairing_backdated` 409).

    The checks cannot race: PostgreSQL's exclusion constraint backs the overlap's, and on SQLite the donor region's
    row is write-locked before it; the sales' is serialised with sales being paid (`_keep_sales_report_rows`).
    """
    errors = {}
    if region_named(donor_code, field="donor_code").side != "donor":
        errors["donor_code"] = ["Not a donor region."]
    if not is_recipient_county(region_named(recipient_code, field="recipient_code").code):
        errors["recipient_code"] = ["Not a recipient county."]
    if valid_until is not None and valid_until < valid_from:
        errors["valid_until"] = ["Must not be before valid_from."]
    errors |= _outside_cooperation(valid_from=valid_from, valid_until=valid_until)
    if errors:
        raise ValidationError("The pairing is not valid.", details=errors)
    _keep_sales_report_rows(donor_code=donor_code, recipient_code=recipient_code,
                            periods={"new": (valid_from, valid_until)}, field="valid_from")
    _refuse_overlap(donor_code=donor_code, recipient_code=recipient_code, program=program, valid_from=valid_from,
                    valid_until=valid_until)
    pairing = Pairing(donor_code=donor_code, recipient_code=recipient_code, program=program,
                      valid_from=valid_from, valid_until=valid_until, source=source)
    with _unless_overlapping():
        db.session.add(pairing)
    invalidate_after_commit(CACHE_NAMESPACE)
    return pairing


def _refuse_overlap(*, donor_code: str, recipient_code: str, program: str, valid_from: date,
                    valid_until: date | None, excluding: int | None = None) -> None:
    """`pairing_overlaps` 409 if a pairing of the same regions and programme other than `excluding` overlaps this
    period (`_overlapping`), checked under the donor region's write lock on SQLite."""
    lock_on_sqlite("UPDATE regions SET code = code WHERE code = :code", code=donor_code)
    overlapping = _overlapping(donor_code=donor_code, recipient_code=recipient_code, program=program,
                               valid_from=valid_from, valid_until=valid_until, excluding=excluding)
    if overlapping is not None:
        raise _overlap(overlapping)


@contextmanager
def _unless_overlapping() -> Iterator[None]:
    """Write a pairing in a savepoint, flushed: an overlap racing past `_refuse_overlap` (PostgreSQL's exclusion
    constraint) is the same `pairing_overlaps` 409."""
    try:
        with db.session.begin_nested():
            yield
            db.session.flush()
    except IntegrityError as error:
        if not violates(error, OVERLAP_CONSTRAINT):
            raise
        raise _overlap(None) from None


def _overlapping(*, donor_code: str, recipient_code: str, program: str, valid_from: date, valid_until: date | None,
                 excluding: int | None = None) -> int | None:
    """The id of a pairing of the same regions and programme whose period overlaps this one (both ends inclusive,
    None: open), other than `excluding`; or None."""
    return db.session.scalar(select(Pairing.id).where(
        Pairing.donor_code == donor_code, Pairing.recipient_code == recipient_code, Pairing.program == program,
        or_(Pairing.valid_until.is_(None), Pairing.valid_until >= valid_from),
        *([Pairing.valid_from <= valid_until] if valid_until else []),
        *([Pairing.id != excluding] if excluding is not None else [])).limit(1))


def duplicate_pairing_start(row: Mapping[str, Any]) -> Conflict:
    """The conflict of a pairing of regions that already have one starting on its first day (in any programme)."""
    return Conflict(f"A pairing of {row['donor_code']} and {row['recipient_code']} from {row['valid_from']} exists.",
                    code=ShopCode.PAIRING_OVERLAPS)


def _overlap(pairing_id: int | None) -> Conflict:
    """The conflict of a pairing overlapping another of the same regions and programme."""
    return Conflict("An overlapping pairing of these regions exists.", code=ShopCode.PAIRING_OVERLAPS,
                    details={"pairing_id": pairing_id} if pairing_id is not None else {})


def get_pairing(pairing_id: int) -> Pairing:
    """A pairing by id, else `pairing_not_found` 404."""
    pairing = db.session.get(Pairing, pairing_id)
    if pairing is None:
        raise NotFound(f"No pairing {pairing_id}.", code=ShopCode.PAIRING_NOT_FOUND)
    return pairing


def set_pairing_end(*, pairing_id: int, valid_until: date | None, actor: User) -> Pairing:
    """End a pairing on `valid_until` (inclusive), or reopen it (None), recording who did and when; its history stays.

    An earlier end stops covering days, a later end or a reopening (undoing a mistaken end) starts covering days:
    neither may hold a sale of the two regions (its report row would silently turn unpaired, or paired;
    `pairing_backdated` 409, as a dividend link's end is refused, `_keep_sales_report_rows`). A later end or a
    reopening may not overlap another pairing of the same regions and programme (`pairing_overlaps` 409, backed by
    the exclusion constraint on PostgreSQL and the donor region's write lock on SQLite, as a new pairing is)."""
    pairing = get_pairing(pairing_id)
    if valid_until is not None and valid_until < pairing.valid_from:
        raise ValidationError("A pairing cannot end before it starts.",
                              details={"valid_until": ["Must not be before valid_from."]})
    if errors := _outside_cooperation(valid_until=valid_until):
        raise ValidationError("The pairing's end is not a realistic date.", details=errors)
    _keep_sales_report_rows(donor_code=pairing.donor_code, recipient_code=pairing.recipient_code,
                            periods={pairing.id: (pairing.valid_from, valid_until)}, field="valid_until")
    if valid_until is None or (pairing.valid_until is not None and valid_until > pairing.valid_until):
        _refuse_overlap(donor_code=pairing.donor_code, recipient_code=pairing.recipient_code,
                        program=pairing.program, valid_from=pairing.valid_from, valid_until=valid_until,
                        excluding=pairing.id)
    with _unless_overlapping():
        pairing.valid_until, pairing.ended_at, pairing.ended_by = valid_until, utcnow(), actor.id
    invalidate_after_commit(CACHE_NAMESPACE)
    return pairing


Period = tuple[date, date | None]  # a pairing's first and last day (inclusive; None: open)


def _day_after(day: date | None) -> date | None:
    """The day after `day` (None, open, for an open end or the last date there is)."""
    return None if day is None or day == date.max else day + timedelta(days=1)


def _covers(periods: Iterable[Period], day: date) -> bool:
    """Whether one of `periods` covers `day`."""
    return any(start <= day and (until is None or day <= until) for start, until in periods)


def _coverage_changes(before: list[Period], after: list[Period]) -> tuple[list[Period], list[Period]]:
    """The days covered after and not before (gained), and before and not after (lost), as periods."""
    cuts = sorted({day for start, until in (*before, *after) for day in (start, _day_after(until)) if day is not None})
    gained, lost = [], []
    for start, following in zip(cuts, [*cuts[1:], None], strict=True):
        was, now = _covers(before, start), _covers(after, start)
        if was != now:
            changed = gained if now else lost
            if changed and changed[-1][1] is not None and _day_after(changed[-1][1]) == start:
                changed[-1] = (changed[-1][0], None if following is None else following - timedelta(days=1))
            else:
                changed.append((start, None if following is None else following - timedelta(days=1)))
    return gained, lost


def _keep_sales_report_rows(*, donor_code: str, recipient_code: str, periods: Mapping[object, Period | None],
                            field: str) -> None:
    """Giving pairings of `donor_code` and `recipient_code` the `periods` (by pairing id, or any other key for a new
    one; None: none) may change no sale's report row: sales credited to the donor of the recipient county's produce
    (paid or since refunded; a higher layer finds them) dated on a day that no pairing of the two regions covered and
    one would cover, or the other way round, are a `pairing_backdated` 409 naming their first and last dates and the
    bound of `field`. The donor's sale dates are held (exclusive) first, until the change is committed: a sale being
    paid meanwhile is waited for and seen, and one paid after waits for the change, so it is reported under the
    pairings valid on its date (`hold_sales`); other changes of the donor's pairings wait likewise."""
    hold_sales(donor_code=donor_code, exclusive=True)
    now = {pairing_id: (start, until) for pairing_id, start, until in db.session.execute(
        select(Pairing.id, Pairing.valid_from, Pairing.valid_until).where(Pairing.donor_code == donor_code,
                                                                          Pairing.recipient_code == recipient_code))}
    gained, lost = _coverage_changes(list(now.values()),
                                     [period for period in {**now, **periods}.values() if period is not None])
    sale_dates = current_app.extensions["pairing_sale_dates"]
    for days, turning in ((lost, "unpaired"), (gained, "paired")):
        found = [dates for start, until in days
                 if (dates := sale_dates(donor_code=donor_code, recipient_code=recipient_code, from_date=start,
                                         until=until)) is not None]
        if not found:
            continue
        first, last = min(dates[0] for dates in found), max(dates[1] for dates in found)
        bound = {"valid_from": f"Must be after {last}.",
                 "valid_until": f"Must not be before {last}." if turning == "unpaired" else f"Must be before {first}."}
        raise Conflict(f"Sales of these regions dated {first} to {last} would turn {turning} in the pairing report: "
                       f"{field} {bound[field].lower()}",
                       code=ShopCode.PAIRING_BACKDATED,
                       details={field: [bound[field]], "first_sale_date": first.isoformat(),
                                "last_sale_date": last.isoformat()})
