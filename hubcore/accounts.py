"""Connected platform accounts: one store shared by connectors (lookup) and gateway (REST)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.errors import InvalidInput
from hubcore.mongo import ACCOUNTS, Document
from schemas import Platform, account_id
from schemas.base import HubModel, UtcDatetime, utc_now

# Credentials each platform needs (contract: Platform accounts); more keys are refused.
REQUIRED_CREDENTIALS: dict[str, frozenset[str]] = {
    "telegram": frozenset({"botToken", "webhookSecret"}),
    "whatsapp": frozenset({"appSecret", "verifyToken"}),
    "slack": frozenset({"signingSecret"}),
    "email": frozenset({"host", "port", "username", "password", "ssl", "mailbox"}),
    "generic": frozenset({"secret"}),
}
Mode = Literal["webhook", "poll"]
DEFAULT_MODE: dict[str, Mode] = {"email": "poll"}


class AccountView(HubModel):
    """An account as the API shows it: never with credentials."""

    id: str
    user_id: str
    platform: Platform
    external_id: str
    mode: Mode
    created_at: UtcDatetime


class Account(AccountView):
    """An account with its credentials, for the connectors that verify and poll."""

    credentials: dict[str, Any] = Field(repr=False)

    def view(self) -> AccountView:
        return AccountView.model_validate(self.model_dump(exclude={"credentials"}))


class AccountNotFound(InvalidInput):
    code = "account_not_found"


def validate_credentials(platform: str, credentials: dict[str, Any]) -> dict[str, Any]:
    """Check the platform's credential keys; raise `InvalidInput` naming what is wrong."""
    required = REQUIRED_CREDENTIALS.get(platform)
    if required is None:
        raise InvalidInput(
            f"unknown platform {platform!r}", fix=f"use one of {', '.join(REQUIRED_CREDENTIALS)}"
        )
    missing = sorted(required - credentials.keys())
    extra = sorted(credentials.keys() - required)
    if missing:
        raise InvalidInput(f"{platform} credentials miss {', '.join(missing)}")
    if extra:
        raise InvalidInput(f"{platform} credentials do not take {', '.join(extra)}")
    empty = sorted(k for k, v in credentials.items() if v in ("", None) and k != "ssl")
    if empty:
        raise InvalidInput(f"{platform} credentials have empty {', '.join(empty)}")
    return credentials


class AccountStore:
    """CRUD over the `accounts` collection; lookups by id are one indexed read."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[ACCOUNTS]

    async def create(
        self,
        user_id: str,
        platform: str,
        external_id: str,
        credentials: dict[str, Any],
        mode: Mode | None = None,
    ) -> Account:
        """Validate and store a new account for `user_id`."""
        validate_credentials(platform, credentials)
        if not external_id:
            raise InvalidInput("externalId must not be empty")
        account = Account(
            id=account_id(),
            user_id=user_id,
            platform=platform,  # validated above
            external_id=external_id,
            mode=mode or DEFAULT_MODE.get(platform, "webhook"),
            created_at=utc_now(),
            credentials=credentials,
        )
        await self.collection.insert_one(_to_doc(account))
        return account

    async def get(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        doc = await self.collection.find_one({"_id": account_id})
        return _from_doc(doc) if doc else None

    async def list(self, user_id: str | None = None, *, mode: Mode | None = None) -> list[Account]:
        """Accounts of one user (or all), oldest first."""
        query: dict[str, Any] = {}
        if user_id is not None:
            query["userId"] = user_id
        if mode is not None:
            query["mode"] = mode
        return [_from_doc(d) async for d in self.collection.find(query).sort("createdAt", 1)]

    async def delete(self, user_id: str, account_id: str) -> bool:
        """Delete one of `user_id`'s accounts; False when it is not theirs or does not exist."""
        result = await self.collection.delete_one({"_id": account_id, "userId": user_id})
        return result.deleted_count == 1


def _to_doc(account: Account) -> Document:
    doc = account.model_dump(by_alias=True)
    doc["_id"] = doc.pop("id")
    return doc


def _from_doc(doc: Document) -> Account:
    created: datetime = doc["createdAt"]
    return Account.model_validate({**doc, "id": doc["_id"], "createdAt": created})
