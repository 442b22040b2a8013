"""Demo users with an account on every webhook platform, created once and reused."""

from __future__ import annotations

import secrets
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import Account, AccountStore
from hubcore.mongo import Document
from hubcore.settings import Settings

# Email arrives by IMAP polling, which needs a mail server: demo traffic uses the
# four webhook platforms.
DEMO_PLATFORMS = ("telegram", "whatsapp", "slack", "generic")


def demo_user_ids(count: int) -> list[str]:
    """Stable ids of the first `count` demo users."""
    return [f"demo-{i}" for i in range(1, count + 1)]


def _credentials(platform: str) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    return {
        "telegram": {"botToken": f"123456:{token}", "webhookSecret": token},
        "whatsapp": {"appSecret": token, "verifyToken": secrets.token_urlsafe(12)},
        "slack": {"signingSecret": token},
        "generic": {"secret": token},
    }[platform]


def _external_id(platform: str, user_id: str) -> str:
    return {
        "telegram": str(secrets.randbelow(10**9) + 10**9),
        "whatsapp": str(secrets.randbelow(10**14) + 10**14),
        "slack": "T" + secrets.token_hex(4).upper(),
        "generic": f"{user_id}-inbox",
    }[platform]


def sending_credentials(callback_url: str | None) -> dict[str, dict[str, str]]:
    """What the demo accounts send replies with: tokens the local stand-ins take, and the
    stand-ins' callback for generic (None: generic accounts only receive)."""
    # Fixed: the stand-ins take any token, and a new one each run would rewrite the accounts.
    return {
        "whatsapp": {"accessToken": "EAAG-demo-token"},
        "slack": {"botToken": "xoxb-demo-token"},
        **({"generic": {"callbackUrl": callback_url}} if callback_url else {}),
    }


async def ensure_demo_accounts(
    db: AsyncDatabase[Document],
    settings: Settings,
    users: list[str],
    sending: dict[str, dict[str, str]] | None = None,
) -> list[Account]:
    """Every demo user's accounts, creating the missing ones (checked like any account);
    `sending` credentials are added where an account lacks them or has others."""
    store = AccountStore(db, settings)
    accounts: list[Account] = []
    for user in users:
        have: dict[str, Account] = {a.platform: a for a in await store.list(user)}
        for platform in DEMO_PLATFORMS:
            extra = (sending or {}).get(platform, {})
            if platform not in have:
                credentials = {**_credentials(platform), **extra}
                have[platform] = await store.create(
                    user, platform, _external_id(platform, user), credentials
                )
            elif any(have[platform].credentials.get(k) != v for k, v in extra.items()):
                have[platform] = await store.add_credentials(have[platform], extra)
            accounts.append(have[platform])
    return accounts
