"""The media fetcher's scheduling: users in turn under a per-user cap, and offsets
committed only up to each partition's first unfinished job."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from connectors.media.schedule import FairQueue, OffsetLedger

TP0, TP1 = TopicPartition("media", 0), TopicPartition("media", 1)


def test_users_take_turns_and_none_holds_more_than_its_share() -> None:
    queue: FairQueue[str] = FairQueue(per_user=2)
    for i in range(5):
        queue.put("many", f"many-{i}")
    queue.put("one", "one-0")
    taken = [queue.take() for _ in range(3)]
    assert taken == [("many", "many-0"), ("one", "one-0"), ("many", "many-1")]
    assert queue.take() is None  # "many" holds its two slots; "one" has nothing left
    queue.finished("many")
    assert queue.take() == ("many", "many-2")
    assert len(queue) == 2


def test_dropped_jobs_are_forgotten() -> None:
    queue: FairQueue[tuple[TopicPartition, int]] = FairQueue(per_user=1)
    queue.put("a", (TP0, 1))
    queue.put("a", (TP1, 2))
    queue.put("b", (TP0, 3))
    queue.drop(lambda job: job[0] == TP0)
    assert queue.take() == ("a", (TP1, 2))
    assert queue.take() is None


def test_commits_stop_at_the_first_unfinished_job_per_partition() -> None:
    ledger = OffsetLedger()
    for offset in (10, 11, 12):
        ledger.read(TP0, offset)
    ledger.read(TP1, 5)
    ledger.finished(TP0, 11)
    ledger.finished(TP0, 12)
    ledger.finished(TP1, 5)
    assert ledger.advance() == {TP1: 6}  # 10 is still running: 11 and 12 wait for it
    assert ledger.pending == 3
    ledger.finished(TP0, 10)
    assert ledger.advance() == {TP0: 13}
    assert ledger.advance() == {}
    assert ledger.pending == 0


def test_a_revoked_partition_is_not_committed() -> None:
    ledger = OffsetLedger()
    ledger.read(TP0, 1)
    ledger.drop([TP0])
    ledger.finished(TP0, 1)  # a job that ended after the revocation
    assert ledger.advance() == {}
