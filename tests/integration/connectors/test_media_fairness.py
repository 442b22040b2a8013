"""One slow file must not delay others (issue 24): jobs run independently, a user holds at
most half the fetch slots, and the offsets are committed only up to the first unfinished
job (the SIGKILL-resume test in test_media_restarts.py covers that half)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hubcore.settings import Settings
from tests import media_payloads as m
from tests import platform_payloads as p
from tests.integration.connectors.harness import eventually
from tests.integration.connectors.test_media_in import Media, media
from tests.resources import SessionResources

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["media"]  # the module fixture, with this module's settings

CONCURRENCY = 4  # a user may hold 2 slots
HANG = 60.0  # a stalled download is cut only after this (far beyond the test's waits)


@pytest.fixture(scope="module")
def media_settings(resources: SessionResources) -> Iterator[Settings]:
    yield resources.settings(
        media_fetch_timeout=HANG,
        media_fetch_attempts=1,
        media_fetch_concurrency=CONCURRENCY,
        outbound_allowed_hosts=["127.0.0.1"],
        outbound_allow_plaintext=True,
    )


async def test_a_users_stalled_files_do_not_delay_another_users_file(media: Media) -> None:
    slow = await media.account("generic", "fair-slow")
    quick = await media.account("generic", "fair-quick")
    # More stalled files than the slots: before, the batch they were read in (and every
    # batch after it) waited for them.
    names = [f"stall-{i}.ogg" for i in range(CONCURRENCY + 1)]
    for name in names:
        media.files.fail[name] = "hang"
    media.files.add("quick.png", m.PNG, "image/png")
    for i, name in enumerate(names):
        url = f"{media.base}/files/{name}"
        await media.deliver(
            "generic", slow, p.generic_message(f"s-{i}", attachments=[{"url": url}])
        )
    # The slow user's first files are held by the stand-in before the other file comes.
    await eventually(
        lambda: sum(media.files.downloads[n] for n in names) >= 2, 60, "the stalled downloads"
    )
    began = time.monotonic()
    url = f"{media.base}/files/quick.png"
    await media.deliver("generic", quick, p.generic_message("q-1", attachments=[{"url": url}]))
    doc = await media.settled("fair-quick", timeout=30)
    took = time.monotonic() - began
    assert [a["status"] for a in doc["attachments"]] == ["ready"]
    assert took < HANG / 2  # the stalled ones are still in flight
    # A user holds at most half the slots: the third stalled file still waits.
    assert sum(media.files.downloads[n] for n in names) == CONCURRENCY // 2
    stalled = await media.db["messages"].find({"userId": "fair-slow"}).to_list(None)
    assert len(stalled) == len(names)
    assert all(d["attachments"][0]["status"] == "pending" for d in stalled)
    # Released, they finish in any order; none is lost or fetched twice.
    for name in names:
        media.files.add(name, m.PNG, "image/png")
    media.files.release()

    async def all_ready() -> bool:
        docs = await media.db["messages"].find({"userId": "fair-slow"}).to_list(None)
        return all(d["attachments"][0]["status"] == "ready" for d in docs)

    await eventually(all_ready, 60, "the stalled user's files")
    assert all(media.files.downloads[n] == 1 for n in names)
