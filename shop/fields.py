"""Schema fields that normalise and bound input once, at the boundary, before validation and storage.

Two kinds of text come in. *Identifiers* (ID numbers, USCCs, bank accounts, registry and product
codes, usernames, trace codes) must be unique or looked up, so every Unicode spelling of one
identifier has to become the same string: full-width forms are folded (`５１３４` → `5134`; no other compatibility form
is, and a superscript, subscript or circled number `²`, `₂`, `①` is refused, never read as a digit), invisible
characters (zero-width spaces, joiners, BOMs, soft hyphens, Hangul fillers, the Braille blank) are removed, the
ends are trimmed and a case rule per identifier applies, and what is left must hold a letter or digit (`---` names
nothing); a control character, or a private-use, unassigned or
surrogate code point, is refused (no two systems need agree on what it shows, so nobody could read the identifier back
or type it again; PostgreSQL stores no NUL);
choices (lower case), dates and moments are read
the same way before they are parsed, so `２０２６-０３-０１` is a date. *Free text* (names, villages, reasons)
keeps its spelling (private-use characters too: GB18030 maps rare characters of names there) but is trimmed,
must contain something visible, may not hold control
characters, and is length-bounded after trimming. Integers are strict and carry a realistic
domain bound, so nothing beyond a column's range reaches the database. On the way out, a value computed
from the object is a `Computed` field, which says its type for the OpenAPI document.
"""
from __future__ import annotations

import copy
import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Literal
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, validate, validates_schema
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent

from shop.clock import today

Case = Literal["upper", "lower"] | None

MAX_ID = 2**31 - 1           # ids are 32-bit integer columns
MAX_QUANTITY = 1_000_000     # units in one lot, line or movement
MAX_PRICE_FEN = 100_000_000  # ¥1,000,000 for one unit
MAX_AMOUNT_FEN = 10**12      # any total or balance in fen
LARGEST_NOTE_FEN = 10_000    # ¥100: cash tendered exceeds the total by less, or a note was not needed
MAX_BP = 10_000              # rates in basis points
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2099, 12, 31)  # any date the shop records or reads

_BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}  # embeddings, overrides, isolates
_SEPARATORS = re.compile(r"[\s-]")  # after the dashes are folded to `-`


_UNSHARED = {"Co", "Cn", "Cs"}  # private-use, unassigned, surrogate code points


_NUMBER_FORMS = {"No", "Nl"}  # superscripts, subscripts, circled, fractions, Roman numerals: numbers, but no digits


CONTROL_CHARACTERS = "Must not contain control characters."  # what a field holding one (or a bidi override) says


def refused_in_identifiers(text: str) -> str | None:
    """Why no identifier holds `text`'s characters (a control character, a private-use, unassigned or surrogate code
    point, or a number form that is no digit: `²`, `₂`, `①`, which NFKC would read as `2`, `2`, `1`), or None."""
    categories = {unicodedata.category(char) for char in text}
    if "Cc" in categories:
        return CONTROL_CHARACTERS
    if categories & _UNSHARED:
        return "Must not contain private-use, unassigned or surrogate characters."
    if categories & _NUMBER_FORMS:
        return "Must not contain superscript, subscript, circled or other number forms (², ₂, ①): type digits."
    return None


# letters that print nothing (Hangul fillers, the Braille blank)
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _is_invisible(char: str) -> bool:
    """Format characters (Cf: zero-width space/joiners, BOM, soft hyphen, bidi marks) and blank letters show
    nothing."""
    return unicodedata.category(char) == "Cf" or char in _BLANK_LETTERS


def _ascii_digit(char: str) -> str:
    """A decimal digit of any script (Devanagari ०, Bengali ০ …, which NFKC keeps) as its ASCII digit."""
    return str(unicodedata.decimal(char)) if not char.isascii() and unicodedata.category(char) == "Nd" else char


# what a keyboard, a word processor's autocorrect or an IME puts for a hyphen: Unicode's dash punctuation (Pd: hyphens,
# figure, en, em and two-em dashes, small, full-width hyphen-minus, Armenian, Hebrew, katakana hyphens…) but its wave
# dashes, which read as a tilde; and the minus signs (minus, heavy minus, modifier letter minus) and the hyphen bullet
_WAVE_DASHES = frozenset("\u301c\u3030")
_MINUS_SIGNS = frozenset("\u2212\u2796\u02d7\u2043")


def _as_hyphen(char: str) -> str:
    """A dash-like character as `-`, any other as it is."""
    if char in _MINUS_SIGNS or (unicodedata.category(char) == "Pd" and char not in _WAVE_DASHES):
        return "-"
    return char


def _is_width_form(char: str) -> bool:
    """A full-width or half-width form (`Ａ`, `５`, `－`, `ｶ`, the ideographic space), as a Chinese or Japanese input
    method types it."""
    return "\uff00" <= char <= "\uffef" or char == "\u3000"


def fold_width(text: str) -> str:
    """`text` composed (NFC) with its full-width and half-width forms as their usual characters (NFKC of those only):
    no other compatibility form is folded, so `²`, `①`, `ﬁ` or a mathematical `𝐇` stays, for a field to refuse."""
    text = unicodedata.normalize("NFC", text)
    return unicodedata.normalize("NFC", "".join(unicodedata.normalize("NFKC", char) if _is_width_form(char) else char
                                                for char in text))


def normalise_identifier(value: str, *, case: Case = "upper", drop_separators: bool = False) -> str:
    """One spelling of an identifier: full-width forms folded (`fold_width`), every script's digits as ASCII digits and
    its dashes as `-`, invisible characters removed, trimmed, the case rule applied; with `drop_separators`, spaces
    and dashes inside are removed too (ID numbers, bank accounts)."""
    if value.isascii():  # the fold, the digits, dashes and invisible characters leave ASCII as it is
        text = value.strip()
    else:
        text = "".join(_ascii_digit(_as_hyphen(char)) for char in fold_width(value) if not _is_invisible(char)).strip()
    if drop_separators:
        text = _SEPARATORS.sub("", text)
    if case == "upper":
        return text.upper()
    if case == "lower":
        return text.lower()
    return text


def normalise_number(value: str) -> str:
    """One spelling of a number as typed, as identifiers are (`normalise_identifier`): read from decimal digits only,
    as the API's integers are (`３`, `٣` are 3; `²`, `①` are no digits and stay, to be refused), full-width forms
    folded (`￥`, `．`, `，`), dashes as `-`, invisible characters removed, trimmed."""
    return normalise_identifier(value, case=None)


def code_skeleton(code: str) -> str:
    """How a normalised code reads: its separators `.` and `_` as `-` (`FS_WH`, `FS.WH` → `FS-WH`); two codes of one
    skeleton are look-alikes, and the second is taken (usernames, location codes)."""
    return code.replace(".", "-").replace("_", "-")


# the numerals a number is written in as it is read aloud (一三八〇〇…, 幺 for 一, 零 or 〇 for 0) or as on a cheque
# (壹贰叁…, in simplified and traditional forms), digit by digit: as the digits they stand for
_CHINESE_DIGITS = {**dict.fromkeys("〇零", "0"), **dict.fromkeys("一幺壹", "1"), **dict.fromkeys("二贰貳", "2"),
                   **dict.fromkeys("三叁參", "3"), **dict.fromkeys("四肆", "4"), **dict.fromkeys("五伍", "5"),
                   **dict.fromkeys("六陆陸", "6"), **dict.fromkeys("七柒", "7"), **dict.fromkeys("八捌", "8"),
                   **dict.fromkeys("九玖", "9")}
_AS_DIGITS = str.maketrans(_CHINESE_DIGITS)
_DIGIT = rf"[\d{''.join(_CHINESE_DIGITS)}]"  # a digit of any script or width (`\d`), or a Chinese numeral
# digits, maybe grouped by a separator: any run of up to three characters neither letters, digits nor ideographs
# (spaces, dots, dashes, slashes, commas, colons, `·`, `*`, `−`: 138/0013/8000, 6222 · 0202 · …), a run of spaces,
# tabs or line breaks counting as one however long (multi-line text keeps them: `6222    0202`, a group a line)
_GROUP_SEPARATOR = r"(?:(?>\s+)|[^\w\s]|_){1,3}"
_DIGIT_GROUPS = re.compile(rf"{_DIGIT}(?:(?:{_GROUP_SEPARATOR})?{_DIGIT})*(?:(?:{_GROUP_SEPARATOR})?[XxＸｘ])?")
_GROUP_SEPARATORS = re.compile(_GROUP_SEPARATOR)
_MOBILE = re.compile(r"1[3-9]\d{9}")
_TRUNK_PREFIXES = ("0086", "86", "0")

MOBILE_RULE = "Not a mainland China mobile number (11 digits starting 13 to 19, optionally after +86)."
_MOBILE_COUNTRY_CODE = re.compile(r"^(?:\+86|0086|86)(?=1[3-9]\d{9}$)")
MAX_PHONE_INPUT = 64  # longer than any spelling of a mobile number, however spaced


def mainland_mobile(value: str) -> str | None:
    """The 11 digits of a mainland China mobile number however it is written (digits of any width or script, spaces
    and dashes, a +86, 0086 or 86 country code), or None if `value` is not one."""
    if len(value) > MAX_PHONE_INPUT:
        return None
    digits = _MOBILE_COUNTRY_CODE.sub("", normalise_identifier(value, case=None, drop_separators=True))
    return digits if _MOBILE.fullmatch(digits) else None


def normalise_username(value: str) -> str:
    """The one spelling of a username wherever it comes in: a mainland mobile number (a consumer's) as its 11 digits
    (`mainland_mobile`: spaces, dashes and +86 folded away); any other as an identifier in lower case, its dashes
    and dots kept (`staff-shunde`)."""
    return mainland_mobile(value) or normalise_identifier(value, case="lower")


_RESIDENT_ID = re.compile(r"\d{17}[\dX]")


def _is_resident_id(number: str) -> bool:
    """Whether 18 characters are a resident ID number: 17 digits and their check digit, with a real birth date (of
    any region: python-stdnum's table of regions fails on some codes, and a number need not be of a known one)."""
    if not _RESIDENT_ID.fullmatch(number) or number[-1] != ric.calc_check_digit(number):
        return False
    try:
        ric.get_birth_date(number)
    except InvalidComponent:
        return False
    return True


def _ascii_digits(text: str) -> str:
    """`text` with its digits of any script or width (`５`, `٣`) and its Chinese numerals (`一三八`, `壹叁捌`:
    `_CHINESE_DIGITS`) as ASCII digits, and its full-width letters (`Ｘ`) in ASCII."""
    return "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char
                   for char in unicodedata.normalize("NFKC", text).translate(_AS_DIGITS))


def _without_check_letter(digits: str) -> str:
    """`digits` (in ASCII, upper case) without a trailing `X`: only a resident ID number ends in one, so after a phone
    or bank card number (`13800138000x`, `6222 … 678 X`) it is no part of it and hides nothing."""
    return digits.removesuffix("X")


_LONGEST_NUMBER = 20  # a bank card's 19 digits and an X; only a resident ID is longer (found in a group's digits)


Part = tuple[int, int, str]  # where a part of a group of digits starts and ends in it, and its characters in ASCII


def _parts(group: str) -> list[Part]:
    """A group of digits' parts between its separators: each one's place in the group, its characters in ASCII and
    upper case."""
    parts, start = [], 0
    for separator in [*_GROUP_SEPARATORS.finditer(group), None]:
        end = len(group) if separator is None else separator.start()
        parts.append((start, end, _ascii_digits(group[start:end]).upper()))
        start = end if separator is None else separator.end()
    return parts


def _numbers_in(parts: list[Part]) -> Iterator[Part]:
    """Each number a group of digits may hold, where it starts and ends in the group: every run of its consecutive
    `parts` joined (up to `_LONGEST_NUMBER` characters), so the whole group, each part and a number grouped next to
    another (`3, 138 0013 8000`, `138 0013 8000-12`) are all read."""
    for first, (start, _end, _text) in enumerate(parts):
        number = ""
        for _start, end, text in parts[first:]:
            number += text
            if len(number) > _LONGEST_NUMBER:
                break
            yield start, end, _without_check_letter(number)


def _resident_ids_in(parts: list[Part]) -> Iterator[tuple[int, int]]:
    """Where each resident ID number (`_is_resident_id`) anywhere in a group's digits starts and ends in the group:
    from the first part it touches to the last."""
    digits = "".join(text for _start, _end, text in parts)
    offsets = [0]
    for _start, _end, text in parts:
        offsets.append(offsets[-1] + len(text))
    for first in range(len(digits) - 17):
        if _is_resident_id(digits[first:first + 18]):
            touched = [(start, end) for (start, end, _text), low, high in zip(parts, offsets, offsets[1:], strict=False)
                       if low < first + 18 and high > first]
            yield touched[0][0], touched[-1][1]


def _personal_numbers(group: str) -> list[tuple[int, int]]:
    """Where a group of digits holds a person's number: a mainland mobile number (maybe with a 0 or 86 prefix) or a
    bank card number (`_is_bank_card`) as one of its numbers (`_numbers_in`), or a resident ID (`_resident_ids_in`);
    any other number (a quantity, an amount) is none."""
    found = []
    for start, end, number in _numbers_in(_parts(group)):
        spellings = [number] + [number[len(prefix):] for prefix in _TRUNK_PREFIXES if number.startswith(prefix)]
        if any(_MOBILE.fullmatch(spelling) for spelling in spellings) or (number.isdigit() and _is_bank_card(number)):
            found.append((start, end))
    return found + list(_resident_ids_in(_parts(group)))


def holds_personal_number(code: str) -> bool:
    """Whether a code holds a resident ID number or a mainland mobile number, however its digits are grouped: codes
    are shown everywhere (trace pages, statements, bank files) and never masked, so none may carry a person's number."""
    return any(_personal_numbers(group.group()) for group in _DIGIT_GROUPS.finditer(code))


def _masked(group: str, mask: str) -> str:
    """A group of digits with each person's number in it (`_personal_numbers`, those that overlap as one) replaced by
    `mask`, the numbers beside them (a quantity before a phone number, an extension after it) kept."""
    shown, kept_to = [], 0
    for start, end in sorted(_personal_numbers(group)):
        if start < kept_to:  # overlaps the one masked last
            kept_to = max(kept_to, end)
            continue
        shown += [group[kept_to:start], mask]
        kept_to = end
    return "".join(shown) + group[kept_to:]


def mask_personal_numbers(text: str, mask: str = "***") -> str:
    """`text` with every person's number in its groups of digits (`_personal_numbers`) replaced by `mask`."""
    return _DIGIT_GROUPS.sub(lambda group: _masked(group.group(), mask), text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, never inside a group of digits (`_DIGIT_GROUPS`): the part of a
    person's number left before the cut would no longer read as one, and be shown unmasked; such a group goes."""
    if len(text) <= limit:
        return text
    cut = next((group.start() for group in _DIGIT_GROUPS.finditer(text) if group.start() < limit < group.end()),
               limit)
    return text[:cut].rstrip()


def no_personal_number(code: str) -> None:
    """Validator: refuse a code that holds a personal number (`holds_personal_number`)."""
    if holds_personal_number(code):
        raise ValidationError("A code must not hold an ID or phone number: it is shown unmasked.")


def no_personal_number_in_text(text: str | None) -> None:
    """Validator: refuse free text shown unmasked (a village on the public trace page, a household head's name) that
    holds a personal number: ID and phone numbers have fields of their own, encrypted and masked."""
    if text and holds_personal_number(text):
        raise ValidationError("Must not hold an ID or phone number: this text is shown unmasked.")


ID_OR_CARD_IN_TEXT = "Do not write ID or bank card numbers here: this text is shown to others unmasked."
_CARD_LENGTHS = range(16, 20)
_UNIONPAY = "62"  # mainland debit cards, some of which carry no Luhn check digit


def _is_bank_card(digits: str) -> bool:
    """Whether digits are a bank card number: 16 to 19 digits passing the Luhn check, or a UnionPay (62…) card's."""
    return len(digits) in _CARD_LENGTHS and (digits.startswith(_UNIONPAY) or luhn.is_valid(digits))


def holds_id_or_card_number(text: str) -> bool:
    """Whether free text holds a resident ID number (18 characters with a valid check digit) or a bank card number
    (`_is_bank_card`), its digits of any width, grouped (`_DIGIT_GROUPS`) or not: one of a group's numbers
    (`_numbers_in`: `账号6222 0200 …`, `订单 12 6222…`)."""
    for group in _DIGIT_GROUPS.finditer(normalise_identifier(text, case=None)):
        parts = _parts(group.group())
        if any(_resident_ids_in(parts)) or any(number.isdigit() and _is_bank_card(number)
                                               for _start, _end, number in _numbers_in(parts)):
            return True
    return False


def _is_control(char: str) -> bool:
    """A control character, or a bidirectional override (which makes text read differently from what it says)."""
    return unicodedata.category(char) == "Cc" or unicodedata.bidirectional(char) in _BIDI_CONTROLS


def without_controls(text: str) -> str:
    """`text` with its control characters and bidirectional overrides dropped (a name we keep but do not validate,
    such as an uploaded file's)."""
    return _CONTROLS.sub("", text)


# `_is_control` as a character class for the OpenAPI document (tab and line breaks apart, which multi-line text takes)
_CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(rf"[\t\n\r{_CONTROL_CLASS}]")  # and as patterns, for scanning text at C speed
_CONTROLS_BUT_LINES = re.compile(rf"[{_CONTROL_CLASS}]")  # what multi-line text refuses
TEXT_PATTERN = rf"^[^\t\n\r{_CONTROL_CLASS}]*$"
MULTILINE_TEXT_PATTERN = rf"^[^{_CONTROL_CLASS}]*$"


_SPACE_RUN = re.compile(r"\s+")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """Free text trimmed of surrounding whitespace and invisible characters, and in one line (a name, a village, a
    reason) without them inside either, each run of spaces one space: what reads alike is one spelling (a payee's name
    in a bank file, a village in the figures). `ValueError` if it holds control characters (other than newlines and
    tabs in multi-line text), bidirectional overrides (which make a name read differently from what it says: in a
    bank file, on a receipt) or nothing visible."""
    if (_CONTROLS_BUT_LINES if multiline else _CONTROLS).search(value):
        raise ValueError(CONTROL_CHARACTERS)
    start, end = 0, len(value)
    while start < end and (value[start].isspace() or _is_invisible(value[start])):
        start += 1
    while end > start and (value[end - 1].isspace() or _is_invisible(value[end - 1])):
        end -= 1
    text = value[start:end]
    if not multiline:
        text = _SPACE_RUN.sub(" ", "".join(char for char in text if not _is_invisible(char)))
    return "" if is_blank(text) else text


def search_fold(text: str) -> str:
    """Text as the `q` search reads it, stored keys and queries alike: NFKC (ＡＢＣ５ is ABC5), lower case, without the
    marks that show nothing of their own (`_UNREAD_MARKS`: a variation selector between 昭觉 and 粉丝 is dropped)."""
    return _UNREAD_MARKS.sub("", unicodedata.normalize("NFKC", text)).lower()


def name_search_key(name: str) -> str:
    """The key `q` matches a name's words against: `search_fold`ed, without spaces (as `q`'s words are)."""
    return "".join(search_fold(name).split())


# marks that show nothing of their own: the grapheme joiner, variation selectors (text or emoji style, a glyph variant)
_UNREAD_MARKS = re.compile("[\u034f\u17b4\u17b5\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def name_key(name: str) -> str:
    """A name's identity, which names that read alike share (大良店A, 大良店Ａ, 大良店 a; 店（顺德）, 店(顺德)):
    `name_search_key` of it without invisible characters and unread marks, case-folded."""
    shown = "".join(char for char in _UNREAD_MARKS.sub("", name) if not _is_invisible(char))
    return name_search_key(shown).casefold()


def shows_nothing(char: str) -> bool:
    """Whether a character shows nothing on its own: whitespace, an invisible one (`_is_invisible`), a combining
    mark."""
    return char.isspace() or _is_invisible(char) or unicodedata.category(char) in ("Mn", "Me")


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing (`shows_nothing`, every character of it), or is empty."""
    return all(map(shows_nothing, text))


def _within_reach(text: str, max_length: int) -> str:
    """`text`, unless it is too long to come within `max_length` characters once trimmed and folded (more than 4 ×
    the bound + 64): refused before it is folded or scanned, which costs time by the character (a 3 MB value, 20 s)."""
    if len(text) > 4 * max_length + 64:
        raise ValidationError(f"Longer than {max_length} characters.")
    return text


class Text(fields.String):
    """Free text: trimmed, something visible, no control characters, `max_length` after trimming (the document
    says the last two as a pattern and bounds), and no resident ID or bank card number (`holds_id_or_card_number`:
    what a person types is shown to staff, co-ops and auditors unmasked; those numbers have fields of their own)."""

    def __init__(self, *, max_length: int, min_length: int = 1, multiline: bool = False, **kwargs):
        self.multiline = multiline
        more = kwargs.pop("validate", None)
        more = [more] if callable(more) else list(more or ())
        super().__init__(validate=[validate.Length(min=min_length, max=max_length), *more], **kwargs)
        self.metadata.setdefault("maxLength", max_length)
        if min_length:
            self.metadata.setdefault("minLength", min_length)
        self.metadata.setdefault("pattern", MULTILINE_TEXT_PATTERN if multiline else TEXT_PATTERN)
        _described(self, "Must not hold a resident ID or bank card number.")

    def _deserialize(self, value, attr, data, **kwargs):
        text = _within_reach(super()._deserialize(value, attr, data, **kwargs), self.metadata["maxLength"])
        try:
            text = clean_text(text, multiline=self.multiline)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if holds_id_or_card_number(text):
            raise ValidationError(ID_OR_CARD_IN_TEXT)
        return text


REMARK_MAX = 200  # a reason or a note: one line, as the audits and histories list it


PHONE_IN_REASON = "Do not write phone numbers here: a reason is kept in audit rows shown unmasked."


class Reason(Text):
    """Why someone acts (a refund, a reveal, a change, a download, a settlement): the one bound every reason has, and
    no personal number at all (`holds_personal_number`: a phone number too), since audits list it unmasked."""

    def __init__(self, **kwargs):
        super().__init__(max_length=REMARK_MAX, **kwargs)
        _described(self, "Must not hold a phone number.")

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if holds_personal_number(text):
            raise ValidationError(PHONE_IN_REASON)
        return text


class Note(Reason):
    """What happened, in a line (units missing on receipt, a stock count, a conflict's resolution): a reason's bound."""


_WIDE_LETTERS_AND_DIGITS = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_FULL_WIDTH_OFFSET = 0xFEE0  # `５` is `5` + this


def name_spelling(text: str) -> str:
    """A one-line name's one spelling (`Name`): its full-width digits and Latin letters as ASCII (`三岔河村１组` is
    `三岔河村1组`, as a spreadsheet types it); Chinese punctuation (`（`, `、`) stays, as Chinese names are written."""
    return _WIDE_LETTERS_AND_DIGITS.sub(lambda wide: chr(ord(wide.group()) - _FULL_WIDTH_OFFSET), text)


class Name(Text):
    """A one-line name (a village, a co-op, a store, a person): free text in one spelling (`name_spelling`), so a
    name typed by an IME and one from a spreadsheet are stored, listed, searched and disclosed as one."""

    def _deserialize(self, value, attr, data, **kwargs):
        return name_spelling(super()._deserialize(value, attr, data, **kwargs))


# what keyboards give for the middle dot of a Yi or Tibetan name (吉克·阿依): a bullet, a Japanese input method's dot,
# a half-width one, a hyphenation point, operators, a full-width stop; an ASCII stop between two non-ASCII characters
_NAME_DOT = re.compile(r"\s*[\u00b7\u0387\u2022\u2027\u2219\u22c5\u30fb\uff65\uff0e]\s*"
                       r"|(?<=[^\x00-\x7f])\s*\.\s*(?=[^\x00-\x7f])")


class PersonName(Name):
    """A person's name as on the ID card, which a bank file pays: free text whose name dot, however typed, is the
    card's middle dot (U+00B7) without spaces around it."""

    def _deserialize(self, value, attr, data, **kwargs):
        return _NAME_DOT.sub("\u00b7", super()._deserialize(value, attr, data, **kwargs))


class MaskedText(fields.String):
    """Free text as it is listed to others (a reason or note in an audit, a consumer's after-sales reason, an
    address's detail): personal numbers masked (`mask_personal_numbers`), since rows written before reasons refused
    them stay as written, and what consumers write may hold one."""

    def _serialize(self, value, attr, obj, **kwargs):
        text = super()._serialize(value, attr, obj, **kwargs)
        return None if text is None else mask_personal_numbers(text)


def _internationalised(host: str) -> bool:
    """Whether a link's host is an internationalised domain name: a non-ASCII character, or a label in punycode
    (`xn--…`, any case)."""
    return not host.isascii() or any(label.lower().startswith("xn--") for label in host.split("."))


LOCAL_NAMES = ("localhost", "local", "internal", "home.arpa")  # special-use names of a local network (RFC 6761,
# 6762, 8375; ICANN's .internal)


def _public_name(host: str) -> bool:
    """Whether a link's host is a name on the public internet: not an IP address, not a local network's name."""
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        name = host.lower().rstrip(".")
        return not any(name == local or name.endswith(f".{local}") for local in LOCAL_NAMES)


class WebLink(fields.Url):
    """An https link of at most `max_length` characters, without control characters or bidirectional overrides,
    without a user name or password before its host, and to an ASCII host (a link shown to staff must read as where it
    goes: `https://img.example.com@evil.example/` goes to evil.example, `https://xn--80ak6aa92e.com/` or a host with a
    Cyrillic `а` to a look-alike of a known site, so no internationalised host is taken, whatever its scripts; a plain
    http one is mixed content on the shop's pages and apps, and may be altered on its way), named on the public
    internet (no IP address, no local network's name: every reader's browser loads it)."""

    def __init__(self, *, max_length: int, **kwargs):
        super().__init__(schemes={"https"}, validate=validate.Length(max=max_length), **kwargs)
        self.metadata.setdefault("maxLength", max_length)
        self.metadata.setdefault("pattern", TEXT_PATTERN)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and any(map(_is_control, _within_reach(value, self.metadata["maxLength"]))):
            raise ValidationError(CONTROL_CHARACTERS)
        link = super()._deserialize(value, attr, data, **kwargs)
        if link is not None and "@" in urlsplit(link).netloc:
            raise ValidationError("Must not name a user or password before its host: the link would not read as "
                                  "where it goes.")
        if link is not None and _internationalised(urlsplit(link).hostname or ""):
            raise ValidationError("Must not link to an internationalised host (xn--…, non-ASCII letters): it may read "
                                  "as another site.")
        if link is not None and not _public_name(urlsplit(link).hostname or ""):
            raise ValidationError("Must link to a public host by its name, not to an IP address or a local network's "
                                  "name (localhost, .local): every reader's browser would load it from their own "
                                  "network.")
        return link


class MobileNumber(fields.String):
    """A mainland China mobile number (`mainland_mobile`), loaded as its 11 digits; anything else is one message."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.metadata.setdefault("maxLength", MAX_PHONE_INPUT)
        _described(self, "A mainland China mobile number: 11 digits starting 13 to 19, optionally after +86, 0086 "
                         "or 86; spaces and dashes are ignored; stored as the 11 digits.")

    def _deserialize(self, value, attr, data, **kwargs):
        number = mainland_mobile(super()._deserialize(value, attr, data, **kwargs))
        if number is None:
            raise ValidationError(MOBILE_RULE)
        return number


NAMES_NOTHING = "Must hold a letter or digit."


def _names_something(identifier: str) -> None:
    """A validator: a normalised identifier holds a letter or digit (separators alone, `---` or `._-`, name nothing)."""
    if not any(char.isalnum() for char in identifier):
        raise ValidationError(NAMES_NOTHING)


class Identifier(fields.String):
    """An identifier normalised by its `normalise` (`normalise_identifier`) before its validators (length, a letter or
    digit held, pattern) run."""

    def __init__(self, *, max_length: int, case: Case = "upper", drop_separators: bool = False,
                 pattern: str | None = None, pattern_error: str | None = None, **kwargs):
        self.case, self.drop_separators = case, drop_separators
        extra = kwargs.pop("validate", None)
        extra = extra if isinstance(extra, list) else [extra] if extra else []
        choices = any(isinstance(validator, validate.OneOf) for validator in extra)  # they bound it, and say how
        validators = [] if choices else [validate.Length(min=1, max=max_length), _names_something]
        if pattern is not None:
            validators.append(validate.Regexp(pattern, error=pattern_error or "Not in the expected format."))
        super().__init__(validate=[*validators, *extra], **kwargs)
        self.metadata.setdefault("maxLength", max_length)

    def _deserialize(self, value, attr, data, **kwargs):
        text = _within_reach(super()._deserialize(value, attr, data, **kwargs), self.metadata["maxLength"])
        if (refused := refused_in_identifiers(text)) is not None:
            raise ValidationError(refused)
        return self.normalise(text)

    def _validate(self, value):
        """Its validators in order, up to the first that refuses the value: one message (a blank or overlong code is
        told its length, not also the pattern that repeats it)."""
        for validator in self.validators:
            validate.And(validator)(value)

    def normalise(self, text: str) -> str:
        """The identifier's one spelling (`normalise_identifier` with this field's rules)."""
        return normalise_identifier(text, case=self.case, drop_separators=self.drop_separators)


# what a bank's reference holds once folded (`bank_reference`): ASCII letters, digits, punctuation and space; Chinese
# characters (CJK unified and compatibility ideographs, every extension) and Chinese punctuation (、。〇《》「」【】…)
_BANK_REFERENCE = re.compile("[ -~\u3001-\u301f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]*")
_SPACE_SEPARATORS = re.compile("[\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")  # Unicode's Zs
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
BANK_REFERENCE_RULE = ("Must hold only ASCII letters, digits, punctuation and spaces, Chinese characters and Chinese "
                       "punctuation (、（）《》…; full-width forms are read as ASCII)")


def bank_reference(value: str) -> str:
    """One spelling of a bank's reference of a deposit or transfer: full-width and half-width forms folded
    (`fold_width`), dashes as `-`, each run of spaces one space, trimmed, ASCII letters upper case (`ｄｅｐ－42` and
    `DEP—42` are `DEP-42`); what else it holds stays, for `refused_in_bank_references`."""
    text = "".join(map(_as_hyphen, fold_width(value))) if not value.isascii() else value
    return _SPACE_SEPARATORS.sub(" ", text).strip().translate(_ASCII_UPPER)


def refused_in_bank_references(reference: str) -> str | None:
    """Why a spelled bank reference (`bank_reference`) is refused, naming its first other character (a look-alike
    from another script, `𝐑`, `Е`, `Ρ`; a control or invisible character; an emoji; a combining mark), or None."""
    if (end := _BANK_REFERENCE.match(reference).end()) == len(reference) and all(
            char.isascii() or unicodedata.category(char) != "Cn" for char in reference):
        return None
    char = reference[end] if end < len(reference) else next(
        char for char in reference if not char.isascii() and unicodedata.category(char) == "Cn")
    name = unicodedata.name(char, "")
    return f"{BANK_REFERENCE_RULE}: not U+{ord(char):04X}{f' ({name})' if name else ''}."


class BankReference(fields.String):
    """A bank's reference of a deposit or transfer (`bank_reference`, `refused_in_bank_references`): the bank's own
    spelling, Chinese included, but one spelling per reference and no look-alikes of another script; then its
    validators (length, a letter or digit held), up to the first that refuses it."""

    def __init__(self, *, max_length: int = 64, **kwargs):
        extra = kwargs.pop("validate", None)
        extra = extra if isinstance(extra, list) else [extra] if extra else []
        super().__init__(validate=[validate.Length(min=1, max=max_length), _names_something, *extra], **kwargs)
        self.metadata.setdefault("maxLength", max_length)
        _described(self, f"{BANK_REFERENCE_RULE}.")

    def _validate(self, value):
        """One message, as an identifier's (`Identifier._validate`)."""
        for validator in self.validators:
            validate.And(validator)(value)

    def _deserialize(self, value, attr, data, **kwargs):
        text = _within_reach(super()._deserialize(value, attr, data, **kwargs), self.metadata["maxLength"])
        reference = bank_reference(text)
        if (refused := refused_in_bank_references(reference)) is not None:
            raise ValidationError(refused)
        return reference


MAX_NUMBER_INPUT = 64  # longer than any number however typed: refused unread
_TYPED_INTEGER = re.compile(r"-?[0-9]+")


class BoundedInt(fields.Integer):
    """A strict integer within `[minimum, maximum]` (the bounds also go into the OpenAPI document); one that is not
    strict (a query's) is read from a string as the pages read a typed number (`normalise_number`: decimal digits
    only, so `1_0`, `+2` or `²` is none), at most `MAX_NUMBER_INPUT` characters."""

    def __init__(self, *, minimum: int, maximum: int, **kwargs):
        kwargs.setdefault("strict", True)
        super().__init__(**_within(validate.Range(min=minimum, max=maximum), kwargs))

    def _deserialize(self, value, attr, data, **kwargs):
        if not self.strict and isinstance(value, str):
            value = normalise_number(value) if len(value) <= MAX_NUMBER_INPUT else value
            if not _TYPED_INTEGER.fullmatch(value):
                raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


def Id(**kwargs) -> BoundedInt:  # noqa: N802 - a field factory reads like a field class
    """A row id: 1 … 2³¹−1."""
    return BoundedInt(minimum=1, maximum=MAX_ID, **kwargs)


def Quantity(**kwargs) -> BoundedInt:  # noqa: N802
    """A positive number of units in one lot, line or movement."""
    return BoundedInt(minimum=1, maximum=MAX_QUANTITY, **kwargs)


def PriceFen(*, minimum: int = 1, **kwargs) -> BoundedInt:  # noqa: N802
    """A unit price in fen, 1 fen … ¥1,000,000 (a bound of a price filter may be 0)."""
    return BoundedInt(minimum=minimum, maximum=MAX_PRICE_FEN, **kwargs)


def AmountFen(**kwargs) -> BoundedInt:  # noqa: N802
    """A non-negative amount of money in fen, up to MAX_AMOUNT_FEN: totals, tendered cash, and a till's float and
    counted cash (a drawer holds what its shift's cash sales, each up to a whole payment, brought, however many)."""
    return BoundedInt(minimum=0, maximum=MAX_AMOUNT_FEN, **kwargs)


def RateBp(**kwargs) -> BoundedInt:  # noqa: N802
    """A rate in basis points, 0 … 10000."""
    return BoundedInt(minimum=0, maximum=MAX_BP, **kwargs)


class Bool(fields.Boolean):
    """A boolean in a JSON body: `true` or `false` only (`"yes"`, `1` or `"on"` are not booleans)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        raise self.make_error("invalid", input=value)


class QueryBool(fields.Boolean):
    """A boolean in a query string: `true`/`false` or `1`/`0`, in any case or width."""

    truthy, falsy = {"true", "1"}, {"false", "0"}

    def _deserialize(self, value, attr, data, **kwargs):
        value = folded(value)
        return super()._deserialize(value.lower() if isinstance(value, str) else value, attr, data, **kwargs)


MAX_MOMENT_INPUT = 64  # longer than any ISO date or moment, however spaced


def folded(value: object) -> object:
    """A string read as identifiers are (width-folded, invisible characters removed, trimmed); anything else, or a
    string longer than any date or moment, as it is, for the parser to refuse (never a prefix of it)."""
    if isinstance(value, str) and len(value) <= MAX_MOMENT_INPUT:
        return normalise_identifier(value, case=None)
    return value


def Choice(choices: tuple[str, ...], **kwargs) -> Identifier:  # noqa: N802 - a field factory reads like a field class
    """One of `choices` (lower-case words), however the input spells it: `ＤＥＬＩＶＥＲＹ` is `delivery`."""
    return Identifier(max_length=max(map(len, choices)), case="lower", validate=validate.OneOf(choices), **kwargs)


DATE_RANGE_ERROR = f"Must be a date from {EARLIEST_DATE} to {LATEST_DATE}."


def _described(field: fields.Field, rule: str) -> None:
    """Add `rule` to the field's description in the OpenAPI document (after its own, if it has one)."""
    field.metadata["description"] = " ".join(filter(None, (field.metadata.get("description"), rule)))


def _within(bounds: validate.Range, kwargs: dict) -> dict:
    """`kwargs` with `bounds` first among the field's validators."""
    extra = kwargs.pop("validate", None)
    return {**kwargs, "validate": [bounds, *(extra if isinstance(extra, list) else [extra] if extra else [])]}


class Date(fields.Date):
    """An ISO date from EARLIEST_DATE to LATEST_DATE (as its description says), its digits and dashes in any width."""

    def __init__(self, **kwargs):
        super().__init__(**_within(validate.Range(min=EARLIEST_DATE, max=LATEST_DATE, error=DATE_RANGE_ERROR),
                                   kwargs))
        _described(self, f"A date from {EARLIEST_DATE} to {LATEST_DATE}.")

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(folded(value), attr, data, **kwargs)


def ordered_range(low: str, high: str, *, message: str, strict: bool = False):
    """A schema check (assign it in the schema's body) of one range's two bounds: when both are given, `high` is not
    below `low` (`strict`: is above it, for an end that is exclusive); a reversed range is a 422 naming `high`."""

    @validates_schema
    def _check(self, data, **kwargs):
        first, second = data.get(low), data.get(high)
        if first is not None and second is not None and (second <= first if strict else second < first):
            raise ValidationError({self.fields[high].data_key or high: [message]})

    return _check


def not_in_the_future(day: date) -> None:
    """A validator: the date is today (in Asia/Shanghai) or before."""
    if day > today():
        raise ValidationError("Must not be in the future.")


class AwareDateTime(fields.AwareDateTime):
    """An ISO moment with its offset, within the dates EARLIEST_DATE to LATEST_DATE (UTC; as its description says),
    its digits and signs in any width."""

    def __init__(self, **kwargs):
        bounds = validate.Range(min=datetime.combine(EARLIEST_DATE, datetime.min.time(), UTC),
                                max=datetime.combine(LATEST_DATE, datetime.max.time(), UTC),
                                error=f"Must be a moment from {EARLIEST_DATE} to {LATEST_DATE}.")
        super().__init__(**_within(bounds, kwargs))
        _described(self, f"A moment from {EARLIEST_DATE} to {LATEST_DATE} (UTC).")

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(folded(value), attr, data, **kwargs)


class Computed(fields.Function):
    """An output value computed from the object by `serialize`, dumped and documented as `field`, a typed field
    (`Computed(lambda lot: len(lot.contributions), fields.Integer())`); nullable if `field` allows None."""

    def __init__(self, serialize, field: fields.Field, **kwargs):
        super().__init__(serialize, **kwargs)
        self.field = field

    def _bind_to_schema(self, field_name: str, parent) -> None:
        super()._bind_to_schema(field_name, parent)
        self.field = copy.deepcopy(self.field)
        self.field._bind_to_schema(field_name, self)

    def _serialize(self, value, attr, obj, **kwargs):
        return self.field._serialize(super()._serialize(value, attr, obj, **kwargs), attr, obj, **kwargs)


def computed2properties(self, field: fields.Field, **kwargs) -> dict:
    """An apispec attribute function: a `Computed` field is documented as its typed field."""
    return self.field2property(field.field) if isinstance(field, Computed) else {}
