"""Fetching across SIGKILLs and replays: a fetch cut short resumes once, never forever, and
a `hub replay` of the history fetches nothing yet restores every attachment's status."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from connectors.platforms import generic
from connectors.publisher import Publisher
from hub.demo.media_files import MediaFiles
from hub.demo.platform_apis import PlatformApis, serving
from hubcore.accounts import Account, AccountStore
from hubcore.attachments import ATTACHMENTS
from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import MESSAGES, Document
from hubcore.settings import Settings
from schemas.base import utc_now
from streams.replay.replay import Replay
from tests import media_payloads as m
from tests import platform_payloads as p
from tests.integration.connectors.harness import (
    SECRETS,
    eventually,
    hub_env,
    killable_connectors,
    read_topic,
)
from tests.streams_helpers import Worker, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _send(publisher: Publisher, account: Account, base: str, ref: str) -> str:
    """A generic message with one file, produced as the webhook would; its message id."""
    body = p.body(p.generic_message(ref, attachments=[{"url": f"{base}/files/{ref}"}]))
    [record] = generic.parse(account, body, utc_now()).records
    await publisher.publish([record], source="webhook")
    return record.id


async def _attachment(db: AsyncDatabase[Document], message_id: str) -> Document | None:
    doc = await db[MESSAGES].find_one({"_id": message_id})
    if doc is None or doc["attachments"][0]["status"] == "pending":
        return None
    found: Document = doc["attachments"][0]
    return found


@dataclass
class _Rig:
    settings: Settings
    env: dict[str, str]
    account: Account
    publisher: Publisher
    base: str


@asynccontextmanager
async def _rig(
    settings: Settings, db: AsyncDatabase[Document], tmp_path: Path, apis: PlatformApis
) -> AsyncIterator[_Rig]:
    """The stand-ins, a `hub streams` worker and a producer of webhook records; the test
    starts (and kills) `hub connectors` processes itself."""
    async with serving(apis) as base:
        settings = settings.model_copy(
            update={"outbound_allowed_hosts": ["127.0.0.1"], "outbound_allow_plaintext": True}
        )
        await ensure_topics(settings)
        env = hub_env(settings, HUB_CONNECTORS_POLLERS="false")  # the policy: from settings
        account = await AccountStore(db, settings).create(
            "alice", "generic", "crm", SECRETS["generic"]
        )
        worker = Worker(worker_env(settings, tmp_path), tmp_path / "worker.log")
        worker.start()
        publisher = Publisher(settings)
        await publisher.start()
        try:
            await wait_ready(worker)
            yield _Rig(settings, env, account, publisher, base)
        finally:
            await publisher.stop()
            worker.stop()


def _rehang(files: MediaFiles) -> None:
    """Answer the downloads held so far (their process is gone) and hold the next ones."""
    files.release()
    files.released = asyncio.Event()


async def test_a_fetch_killed_midway_resumes_once_and_a_second_kill_gives_up(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    apis = PlatformApis()
    files = apis.files
    assert files is not None
    files.fail = {"resumed.pdf": "hang", "stuck.pdf": "hang"}
    async with _rig(settings, mongo_db, tmp_path, apis) as rig:
        env, base = rig.env, rig.base
        publisher, account = rig.publisher, rig.account
        resumed = await _send(publisher, account, base, "resumed.pdf")
        with killable_connectors(env, tmp_path, "first") as first:
            await eventually(lambda: files.downloads["resumed.pdf"], 90, "the download")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        del files.fail["resumed.pdf"]
        files.add("resumed.pdf", m.PDF, "application/pdf")
        _rehang(files)
        with killable_connectors(env, tmp_path, "second") as second:
            att = await eventually(lambda: _attachment(mongo_db, resumed), 90, "resumed")
            assert (att["status"], att["mimeType"]) == ("ready", "application/pdf")
            assert files.downloads["resumed.pdf"] == 2  # the killed one and the resumed one
            # A file whose fetch hangs, killed twice: fetched twice, then given up.
            stuck = await _send(publisher, account, base, "stuck.pdf")
            await eventually(lambda: files.downloads["stuck.pdf"], 90, "the stuck download")
            second.send_signal(signal.SIGKILL)
            second.wait(10)
        _rehang(files)
        with killable_connectors(env, tmp_path, "third") as third:
            await eventually(lambda: files.downloads["stuck.pdf"] == 2, 90, "the resume")
            third.send_signal(signal.SIGKILL)
            third.wait(10)
        _rehang(files)
        with killable_connectors(env, tmp_path, "fourth"):
            att = await eventually(lambda: _attachment(mongo_db, stuck), 90, "given up")
        assert (att["status"], att["reason"]) == ("failed", "timeout")
        assert files.downloads["stuck.pdf"] == 2
        doc = await mongo_db[ATTACHMENTS].find_one({"_id": att["id"]})
        assert doc is not None and doc["starts"] == 3


async def test_replay_fetches_nothing_and_restores_the_statuses(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    apis = PlatformApis()
    files = apis.files
    assert files is not None
    files.add("kept.png", m.PNG, "image/png")
    async with _rig(settings, mongo_db, tmp_path, apis) as rig:
        env, base, settings = rig.env, rig.base, rig.settings
        topics = Topics.from_settings(settings)
        publisher, account = rig.publisher, rig.account
        sent = await _send(publisher, account, base, "kept.png")
        with killable_connectors(env, tmp_path, "connectors"):
            att = await eventually(lambda: _attachment(mongo_db, sent), 90, "the file")
            assert att["status"] == "ready"
        jobs = len(await read_topic(settings, topics.media_fetch))
    # The worker is gone (a replay needs that).
    summary = await Replay(settings).run()
    assert summary.stored == 1
    assert len(await read_topic(settings, topics.media_fetch)) == jobs == 1
    assert files.downloads["kept.png"] == 1
    again = await _attachment(mongo_db, sent)
    assert again is not None and (again["status"], again["mimeType"]) == ("ready", "image/png")
