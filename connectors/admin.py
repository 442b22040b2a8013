"""Operator actions behind `hub accounts ...`: one short-lived store connection each."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.credentials import parse_pairs
from hubcore.account_rules import Mode
from hubcore.accounts import Account, AccountStore
from hubcore.mongo import create_client, database
from hubcore.settings import Settings
from schemas.base import format_utc


async def add_account(
    settings: Settings,
    *,
    user_id: str,
    platform: str,
    external_id: str,
    credentials: Sequence[str],
    mode: Mode | None,
) -> Account:
    """Store a new account from `key=value` credentials (checked like every account)."""
    parsed = parse_pairs(credentials)
    client = create_client(settings.mongo_url)
    try:
        store = AccountStore(database(client, settings), settings)
        return await store.create(user_id, platform, external_id, parsed, mode)
    finally:
        await client.close()


async def list_accounts(settings: Settings, user_id: str | None) -> list[Account]:
    """All accounts, or one user's, oldest first."""
    client = create_client(settings.mongo_url)
    try:
        return await AccountStore(database(client, settings), settings).list(user_id)
    finally:
        await client.close()


async def rotate_key(settings: Settings) -> int:
    """Re-seal every account's credentials with the first key of HUB_CREDENTIALS_KEY."""
    client = create_client(settings.mongo_url)
    try:
        return await AccountStore(database(client, settings), settings).rotate_keys()
    finally:
        await client.close()


def account_table(accounts: Sequence[Account]) -> list[str]:
    """Aligned lines with a header; credential values are never shown, only their keys."""
    rows = [["ID", "USER", "PLATFORM", "EXTERNAL ID", "MODE", "CREATED", "CREDENTIALS"]]
    for a in accounts:
        secrets = " ".join(f"{key}=***" for key in sorted(a.credentials))
        rows.append(
            [a.id, a.user_id, a.platform, a.external_id, a.mode, format_utc(a.created_at), secrets]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
