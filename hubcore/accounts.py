"""Connected platform accounts: one store shared by connectors (lookup) and gateway (REST).

Every account is checked by `account_rules.check_account` and, for user-supplied servers,
the outbound policy; credentials are stored sealed (`sealing`), never in clear.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.account_rules import Mode, check_account
from hubcore.errors import InvalidInput
from hubcore.mongo import ACCOUNTS, Document
from hubcore.outbound import OutboundPolicy, Resolver
from hubcore.sealing import CredentialCipher, UnreadableCredentials
from hubcore.settings import Settings
from schemas import Platform, account_id
from schemas.base import HubModel, UtcDatetime, utc_now


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


SEALED = "sealedCredentials"  # field of the stored document; `credentials` never is


class AccountStore:
    """CRUD over the `accounts` collection; lookups by id are one indexed read.

    Needs `HUB_CREDENTIALS_KEY` (`SettingsError` otherwise). `resolver` replaces the
    system resolver of the outbound policy (tests).
    """

    def __init__(
        self, db: AsyncDatabase[Document], settings: Settings, *, resolver: Resolver | None = None
    ) -> None:
        self.collection = db[ACCOUNTS]
        self.cipher = CredentialCipher.from_settings(settings)
        self.policy = OutboundPolicy.from_settings(settings, resolver)

    async def create(
        self,
        user_id: str,
        platform: str,
        external_id: str,
        credentials: dict[str, Any],
        mode: str | None = None,
    ) -> Account:
        """Validate and store a new account for `user_id`; `InvalidField` naming the field."""
        clean, chosen = await self._checked(platform, external_id, credentials, mode)
        account = Account(
            id=account_id(),
            user_id=user_id,
            platform=platform,  # checked above
            external_id=external_id,
            mode=chosen,
            created_at=utc_now(),
            credentials=clean,
        )
        await self.collection.insert_one(self._to_doc(account))
        return account

    async def add_credentials(self, account: Account, credentials: dict[str, Any]) -> Account:
        """The account with `credentials` added to (or replacing) its own, checked as new."""
        merged = {**account.credentials, **credentials}
        clean, _ = await self._checked(account.platform, account.external_id, merged, account.mode)
        updated = account.model_copy(update={"credentials": clean})
        sealed = self.cipher.seal(clean)
        await self.collection.update_one({"_id": account.id}, {"$set": {SEALED: sealed}})
        return updated

    async def _checked(
        self, platform: str, external_id: str, credentials: dict[str, Any], mode: str | None
    ) -> tuple[dict[str, Any], Mode]:
        clean, chosen = check_account(platform, external_id, credentials, mode)
        if platform == "email":
            self.policy.check_tls(clean["ssl"])
            await asyncio.to_thread(self.policy.address_for, clean["host"], clean["port"])
        if "smtpHost" in clean:
            self.policy.check_tls(clean["smtpTls"], "credentials.smtpTls")
            host, port = clean["smtpHost"], clean["smtpPort"]
            await asyncio.to_thread(self.policy.address_for, host, port, "credentials.smtpHost")
        if "callbackUrl" in clean:
            await asyncio.to_thread(self.policy.url_address, clean["callbackUrl"])
        return clean, chosen

    async def rotate_keys(self) -> int:
        """Re-seal every account with the newest key; returns how many were re-sealed."""
        count = 0
        async for doc in self.collection.find({}, {SEALED: 1, "credentials": 1}):
            if isinstance(doc.get("credentials"), dict):  # stored before sealing existed
                update = {"$set": {SEALED: self.cipher.seal(doc["credentials"])}}
                update["$unset"] = {"credentials": ""}
            else:
                update = {"$set": {SEALED: self.cipher.reseal(doc[SEALED])}}
            await self.collection.update_one({"_id": doc["_id"]}, update)
            count += 1
        return count

    async def get(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        doc = await self.collection.find_one({"_id": account_id})
        return self._from_doc(doc) if doc else None

    async def get_many(self, ids: Sequence[str]) -> dict[str, Account | UnreadableCredentials]:
        """The accounts among `ids` that exist, in one read; an account whose credentials
        cannot be opened maps to that error, so it fails alone."""
        found: dict[str, Account | UnreadableCredentials] = {}
        async for doc in self.collection.find({"_id": {"$in": list(ids)}}):
            try:
                found[doc["_id"]] = self._from_doc(doc)
            except UnreadableCredentials as exc:
                found[doc["_id"]] = exc
        return found

    async def list(self, user_id: str | None = None, *, mode: Mode | None = None) -> list[Account]:
        """Accounts of one user (or all), oldest first."""
        query: dict[str, Any] = {}
        if user_id is not None:
            query["userId"] = user_id
        if mode is not None:
            query["mode"] = mode
        return [self._from_doc(d) async for d in self.collection.find(query).sort("createdAt", 1)]

    async def count(self, user_id: str) -> int:
        """How many accounts `user_id` has."""
        return await self.collection.count_documents({"userId": user_id})

    async def delete(self, user_id: str, account_id: str) -> bool:
        """Delete one of `user_id`'s accounts; False when it is not theirs or does not exist."""
        result = await self.collection.delete_one({"_id": account_id, "userId": user_id})
        return result.deleted_count == 1

    def _to_doc(self, account: Account) -> Document:
        doc = account.model_dump(by_alias=True, exclude={"credentials"})
        doc["_id"] = doc.pop("id")
        doc[SEALED] = self.cipher.seal(account.credentials)
        return doc

    def _from_doc(self, doc: Document) -> Account:
        created: datetime = doc["createdAt"]
        sealed = doc.get(SEALED)
        # Accounts stored before sealing existed are read as they are until rotate-key.
        credentials = self.cipher.open(sealed) if sealed else doc.get("credentials", {})
        fields = {k: v for k, v in doc.items() if k != SEALED}
        return Account.model_validate(
            {**fields, "id": doc["_id"], "createdAt": created, "credentials": credentials}
        )
