"""Big and concurrent bulk writes to one database finish (they hung on stock FerretDB 1.24).

FerretDB 1.24 kept one pooled SQLite connection (of 100 per database) per statement of an
update command until the command returned, so 100 statements in one command, or several
concurrent commands adding up to 100, waited forever. The hub's FerretDB build closes each
statement's iterator (hub/provision/patches/ferretdb); `bulk_write_chunked` also keeps
commands at 50 statements for servers without the fix.
"""

from __future__ import annotations

import asyncio

import pytest
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document

pytestmark = pytest.mark.integration

DOCS = 600


async def _seed(db: AsyncDatabase[Document], name: str) -> None:
    await db[name].insert_many([{"_id": f"d{i}", "n": 0} for i in range(DOCS)])


async def test_one_command_of_hundreds_of_updates_finishes(
    mongo_db: AsyncDatabase[Document],
) -> None:
    await _seed(mongo_db, "big")
    ops = [UpdateOne({"_id": f"d{i}"}, {"$inc": {"n": 1}}) for i in range(DOCS)]
    result = await asyncio.wait_for(mongo_db.big.bulk_write(ops), timeout=60)
    assert result.modified_count == DOCS
    assert await mongo_db.big.count_documents({"n": 1}) == DOCS


async def test_concurrent_commands_on_one_database_finish(
    mongo_db: AsyncDatabase[Document],
) -> None:
    names = ["c0", "c1", "c2", "c3"]
    for name in names:
        await _seed(mongo_db, name)

    async def bump(name: str) -> int:
        ops = [UpdateOne({"_id": f"d{i}"}, {"$inc": {"n": 1}}) for i in range(0, DOCS, 6)]
        total = 0
        for start in range(0, len(ops), 50):
            total += (await mongo_db[name].bulk_write(ops[start : start + 50])).modified_count
        return total

    done = await asyncio.wait_for(asyncio.gather(*(bump(n) for n in names)), timeout=60)
    assert done == [DOCS // 6] * len(names)
