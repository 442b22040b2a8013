"""A live `hub replay` builds the derived collections under staging names and swaps them
in only when complete, so the previous state stays readable and a failed replay changes
nothing."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import DERIVED_COLLECTIONS, Document

STAGED = "__replay"  # suffix of the collections a live replay builds
_PREVIOUS = "__previous"


class Staged:
    """The live database with the derived collections under their staging names."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    def __getitem__(self, name: str) -> AsyncCollection[Document]:
        return self._db[name + STAGED if name in DERIVED_COLLECTIONS else name]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._db, attr)


async def switch(client: AsyncMongoClient[Document], db: AsyncDatabase[Document]) -> None:
    """Put the staged collections in place of the live ones (renames, without dropTarget,
    which FerretDB lacks: for each, the old one is moved aside first, then dropped)."""
    existing = set(await db.list_collection_names())
    for name in DERIVED_COLLECTIONS:
        if name + STAGED not in existing:  # nothing was written to it
            await db.create_collection(name + STAGED)
        await db.drop_collection(name + _PREVIOUS)
    rename = "renameCollection"
    for name in DERIVED_COLLECTIONS:
        if name in existing:
            await client.admin.command(
                rename, f"{db.name}.{name}", to=f"{db.name}.{name}{_PREVIOUS}"
            )
        await client.admin.command(rename, f"{db.name}.{name}{STAGED}", to=f"{db.name}.{name}")
    for name in DERIVED_COLLECTIONS:
        await db.drop_collection(name + _PREVIOUS)
