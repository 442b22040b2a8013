"""Credentials typed in as `key=value` (the CLI); `hubcore.account_rules` checks them."""

from __future__ import annotations

from collections.abc import Sequence

from hubcore.errors import InvalidInput


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`["key=value", ...]` -> `{key: value}`; the values stay text for the rules to type."""
    credentials: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            # Not echoed: a pair without "=" may be a bare secret.
            raise InvalidInput(f"credential number {number} is not of the form key=value")
        if key in credentials:
            raise InvalidInput(f"credential {key} is given twice")
        credentials[key] = value
    return credentials
