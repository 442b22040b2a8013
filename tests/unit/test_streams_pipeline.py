"""The batch pipeline's order: a batch prepares while the previous one's acks are awaited,
but sends only after they came; a batch whose acks failed is redone before a later one is
sent or reported done."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from streams.batch.outcome import BatchOutcome, PhaseClock
from streams.batch.pipeline import BatchPipeline
from streams.batch.processor import BatchProcessor, Prepared
from streams.batch.records import SourceRecord
from streams.batch.retry import BatchRunner


def _records(n: int) -> list[SourceRecord]:
    return [SourceRecord("t", 0, n, b"k", b"v")]


class StepProcessor:
    """Records the order of prepare/send/ack/process steps; acks resolve when told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.acks: dict[int, asyncio.Future[Any]] = {}

    async def prepare(self, records: Sequence[SourceRecord]) -> Prepared:
        n = records[0].offset
        self.steps.append(f"prepare {n}")
        outcome = BatchOutcome(records=n)
        return Prepared(outcome, PhaseClock(outcome.phases), {}, {}, {})

    async def send(self, prepared: Prepared) -> asyncio.Future[Any]:
        n = prepared.outcome.records
        self.steps.append(f"send {n}")
        self.acks[n] = asyncio.get_running_loop().create_future()
        return self.acks[n]

    async def process(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        n = records[0].offset
        self.steps.append(f"redo {n}")
        return BatchOutcome(records=n)


def _pipeline(processor: StepProcessor) -> BatchPipeline:
    return BatchPipeline(BatchRunner(cast(BatchProcessor, processor)))


async def test_next_batch_prepares_during_acks_and_sends_after_them() -> None:
    processor = StepProcessor()
    pipeline = _pipeline(processor)
    done: list[int] = []

    def report(outcome: BatchOutcome) -> None:
        done.append(outcome.records)
        processor.steps.append(f"done {outcome.records}")

    await pipeline.submit(_records(1), report)
    second = asyncio.create_task(pipeline.submit(_records(2), report))
    await asyncio.sleep(0.01)
    # Batch 2 is prepared, but not sent while batch 1's acks are outstanding.
    assert processor.steps == ["prepare 1", "send 1", "prepare 2"]
    processor.acks[1].set_result(None)
    await second
    assert processor.steps == ["prepare 1", "send 1", "prepare 2", "done 1", "send 2"]
    processor.acks[2].set_result(None)
    await pipeline.wait()
    assert done == [1, 2]


async def test_failed_acks_are_redone_before_the_next_batch_is_sent() -> None:
    processor = StepProcessor()
    pipeline = _pipeline(processor)
    done: list[int] = []
    await pipeline.submit(_records(1), lambda o: done.append(o.records))
    second = asyncio.create_task(pipeline.submit(_records(2), lambda o: done.append(o.records)))
    await asyncio.sleep(0.01)
    processor.acks[1].set_exception(ConnectionError("broker away"))
    await second
    assert processor.steps == ["prepare 1", "send 1", "prepare 2", "redo 1", "send 2"]
    assert done == [1]
    processor.acks[2].set_result(None)
    await pipeline.wait()
    assert done == [1, 2]


async def test_close_leaves_an_unacked_batch_undone() -> None:
    processor = StepProcessor()
    pipeline = _pipeline(processor)
    done: list[int] = []
    await pipeline.submit(_records(1), lambda o: done.append(o.records))
    await pipeline.close()
    assert done == []
    assert processor.steps == ["prepare 1", "send 1"]
