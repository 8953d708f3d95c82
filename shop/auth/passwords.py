"""What makes a new password too easy to guess: one of the most used passwords, a pattern (a short group repeated, a
straight run), or the user's own username."""
from __future__ import annotations

import re
import unicodedata

# the most used passwords of 8 characters or more (shorter ones are refused anyway), in lower case, drawn from public
# lists: SecLists' most common passwords and the top passwords of the CSDN and 12306 leaks
COMMON_PASSWORDS = frozenset("""
    00000000 000000000 0000000000 0123456789 1111111111 111111111 11111111 110110110 11223344 12121212 12344321
    123123123 12341234 1234567890 123456789 123456789. 123456789a 12345678 12345678a 1234567a 123456aa 123456abc
    123456123 1234qwer 123654789 123321123 123qweasd 147258369 1q2w3e4r 1q2w3e4r5t 1qaz2wsx 1qaz2wsx3edc 22222222
    31415926 33333333 520520520 5201314520 55555555 66666666 741852963 789456123 87654321 88888888 963852741
    987654321 99999999 a12345678 a123456789 a1234567 aa123456 aaaaaaaa abc12345 abc123456 abcd1234 abcdefgh
    admin123 admin1234 administrator asdasdasd asdf1234 asdfasdf asdfghjkl baseball butterfly chocolate computer
    dearbook football iloveyou iloveyou1 internet jennifer liverpool michelle midnight p@ssw0rd p@ssword passw0rd
    password password1 password1! password12 password123 princess qazwsxedc qq123456 qqqqqqqq qwe123456 qwer1234
    qwerty12 qwerty123 qwerty1234 qwertyui qwertyuiop starwars sunshine superman trustno1 welcome1 welcome123
    whatever woaini1314 xiazhili zaq12wsx zaq1zaq1
""".split())
TOO_COMMON = ("Too easy to guess: one of the most used passwords (12345678, password …), a short group repeated "
              "(aaaaaaaa, abcabcabc) or a straight run (abcdefgh, 98765432, qwertyui); choose another.")
HOLDS_USERNAME = "Must not contain the username (a consumer's: the phone number)."
_NOT_A_LETTER_OR_DIGIT = re.compile(r"[\W_]+")
REPEATED_GROUP_MAX = 4  # `abcdabcd` is a pattern; a longer group repeated is a passphrase's business
# what a straight run is drawn from: the digits (9 runs on to 0), the alphabet, the keyboard's letter rows in turn
_RUNS = ("01234567890123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


def password_form(password: str) -> str:
    """The one form of a password, its length counted and its hash made of: its compatibility form (NFKC), so
    `Ｌｉａｎｇｓｈａｎ２０２６`, typed in a Chinese input method's full-width mode on a phone, is `Liangshan2026`
    typed on a computer, and `a` with a combining accent is the one character `á`."""
    return unicodedata.normalize("NFKC", password)


def _as_guessed(password: str) -> str:
    """How a guesser reads `password`: in its one form (full-width `１２３４５６７８` is `12345678`) and in any case."""
    return password_form(password).casefold()


def _is_pattern(text: str) -> bool:
    """Whether `text` is a group of at most `REPEATED_GROUP_MAX` characters repeated (`aaaaaaaa`, `abcabcab`) or a
    straight run, forwards or backwards (`abcdefgh`, `1234567890`, `zyxwvuts`, `qwertyui`)."""
    repeated = any(len(text) >= 2 * size and text == (text[:size] * len(text))[:len(text)]
                   for size in range(1, REPEATED_GROUP_MAX + 1))
    return repeated or any(text in run or text in run[::-1] for run in _RUNS)


def too_common(password: str) -> bool:
    """Whether `password`, in any case or width and without surrounding spaces, is one of the most used passwords or
    a pattern (`_is_pattern`)."""
    guessed = _as_guessed(password).strip()
    return guessed in COMMON_PASSWORDS or _is_pattern(guessed)


def holds_username(password: str, username: str) -> bool:
    """Whether `password` holds `username` (in its one spelling), in any case or width and however its letters and
    digits are parted (`Staff_Shunde1`, `139-6666-7777`, full-width `１３９６６６６７７７７` hold `staff-shunde`,
    `13966667777`)."""
    letters = _NOT_A_LETTER_OR_DIGIT.sub("", username)
    return bool(letters) and letters in _NOT_A_LETTER_OR_DIGIT.sub("", _as_guessed(password))
