"""Numbers that are references by their own shape, whatever words come before them: an IBAN
(its country, its check digits), an EAN-13 or ISBN-13 or a UPC-A printed in its groups (its
check digit), an ISBN-10 in its four groups, a tax number with its check digit after a
dash, a date."""

from __future__ import annotations

import re

# An IBAN's opening before a run of digits ("be71 0961 2345 6769": the run starts at 0961),
# and the whole IBAN from there: the country, two check digits, groups of up to four.
_IBAN_OPENING = re.compile(r"(?<![0-9a-z])[a-z]{2}\d{2}(?: ?[0-9a-z]{4}){0,7} ?$")
_IBAN = re.compile(r"[a-z]{2}\d{2}(?: ?[0-9a-z]{1,4}){3,8}")
_UPC_GROUPS = re.compile(r"^\d[ -]\d{5}[ -]\d{5}[ -]\d$")  # "0 62345 67890 5"
_ISBN10_GROUPS = re.compile(r"^\d{1,5}([ -])\d{1,7}\1\d{1,7}\1[\dx]$")
# A day, month and year (or year, month, day) among the run's groups: "12/05/2024 16",
# "09.–11.04.2024", "2024-05-09".
_DAY, _MONTH = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d\d"
_DATE = re.compile(
    rf"(?<!\d){_DAY}([./-]){_MONTH}\1{_YEAR}(?!\d)|(?<!\d){_YEAR}([./-]){_MONTH}\2{_DAY}(?!\d)"
    rf"|(?<!\d){_MONTH}/{_DAY}/{_YEAR}(?!\d)"
)
_YEAR_AFTER_SLASH = re.compile(rf"\d/{_YEAR}$")  # "018/2011": a document of that year
# Tax numbers of Latin America with their check digit after a dash: RUT "17.654.321-5",
# NIT "901.234.567-8", CUIT "30-71234567-9".
_TAX_NUMBER = re.compile(r"^\d{1,3}\.\d{3}\.\d{3}-\d$|^\d{2}-\d{8}-\d$")


def is_iban(text: str, start: int) -> bool:
    """Whether the run of digits at `start` continues an IBAN written before it."""
    opening = _IBAN_OPENING.search(text, max(0, start - 40), start)
    if opening is None:
        return False
    whole = _IBAN.match(text, opening.start())
    return whole is not None and whole.end() > start and iban_valid(whole.group(0))


def iban_valid(written: str) -> bool:
    compact = written.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def gtin_valid(digits: str) -> bool:
    """The check digit of an EAN-13, UPC-A or other GTIN (ISBN-13 is an EAN-13)."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def isbn10_valid(written: str) -> bool:
    compact = written.replace(" ", "").replace("-", "")
    if len(compact) != 10:
        return False
    values = [10 if c == "x" else int(c) for c in compact]
    return sum((10 - i) * v for i, v in enumerate(values)) % 11 == 0


def is_reference_shape(written: str, digits: str) -> bool:
    """A run (as written, without "+" or "00") that is a barcode, a book number or a date."""
    if len(digits) == 13 and gtin_valid(digits):
        return True
    if _UPC_GROUPS.match(written) and gtin_valid(digits):
        return True
    if _ISBN10_GROUPS.match(written) and isbn10_valid(written):
        return True
    if _TAX_NUMBER.match(written):
        return True
    return bool(_DATE.search(written) or _YEAR_AFTER_SLASH.search(written))
