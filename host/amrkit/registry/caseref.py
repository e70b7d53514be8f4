"""The police case reference a unit is issued under: an opaque short code,
never a victim's personal data.

Rule: 4 to 32 characters, only letters, digits and the separators - / .;
at least one letter and one digit; no run of 8 or more digits (a phone
number), so no spaces, no @ (an e-mail), no names with spaces.
"""

from __future__ import annotations

import re

_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9/.-]{3,31}")
_LONG_DIGITS = re.compile(r"[0-9]{8,}")

RULE = (
    "4-32 letters, digits and - / . only, with at least one letter and one digit "
    "and no run of 8 or more digits; the police case number, never a name, "
    "e-mail address or phone number"
)


def validate_case_ref(value: str) -> str:
    """The reference unchanged, or ValueError naming the rule it breaks."""
    if "@" in value:
        raise ValueError("a case reference must not be an e-mail address: " + RULE)
    if not _ALLOWED.fullmatch(value):
        raise ValueError("not a case reference: " + RULE)
    if not any(c.isalpha() for c in value) or not any(c.isdigit() for c in value):
        raise ValueError("a case reference has letters and digits: " + RULE)
    if _LONG_DIGITS.search(value):
        raise ValueError("looks like a phone number: " + RULE)
    return value
