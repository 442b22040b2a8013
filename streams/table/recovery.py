"""Faust's table recovery, ending so that no record of a stream partition is skipped.

Faust 0.15.3 ends a recovery (`Recovery.on_recovery_completed`) by resuming the stream
partitions, awaiting their seek to the committed offsets, and only then resuming flow
control, which clears every stream buffer (`FlowControlEvent.resume` clears the queues made
with `clear_on_resume=True`, as all channel queues are). The fetcher runs all along, so
records it fetched from the resumed partitions during the seek were handed to the agent's
queue, marked read, then cleared (faust-streaming issue #596). And the seek is only to
*committed* offsets: a partition without one (a new group, a topic not yet consumed from) is
not sought at all, so records a stray fetch took from it while it was paused (see
`streams.consumer`) stay skipped. Either way the records are never processed, never fetched
again and never acknowledged: the worker idles with records left, and a restart redelivers
them after later records raised the table's watermarks, so they are stored but not counted.

Here, while the stream partitions are still paused: every one is sought to its committed
offset or, without one, to its first offset (`consumer_auto_offset_reset` is "earliest"),
the buffers are cleared, and only then are the partitions resumed, with no await between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Set
from typing import Any, cast

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP


async def rewind(consumer: Any, tps: Set[TP]) -> None:
    """Seek `tps` to their committed offsets, and those without one to their first offset."""
    await consumer.perform_seek()
    # `perform_seek` records what it found (0 and None both mean: nothing committed).
    uncommitted = [tp for tp in tps if not consumer._committed_offset.get(tp)]
    if uncommitted:
        earliest = await consumer.earliest_offsets(*uncommitted)
        await consumer.seek_wait({tp: earliest[tp] for tp in uncommitted})


class RewindThenResumeRecovery(Recovery):
    """`Recovery` that rewinds the paused stream partitions, clears, and then resumes them."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust 0.15.3's `on_recovery_completed`, with the seek as `rewind` and the stream
        partitions resumed last."""
        app = cast(Any, self.app)
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            # Another rebalance started; its recovery resumes the partitions.
            self.log.warning(
                "Recovery rebalancing again app id %r param %r",
                app.consumer_generation_id,
                generation_id,
            )
            return
        stream_tps = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(rewind(consumer, stream_tps), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        # Clears the buffers (nothing of the paused stream partitions is in them), then
        # lets the stream partitions in from where `rewind` put them.
        app.flow_control.resume()
        consumer.resume_partitions(stream_tps)
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class StreamsTableManager(TableManager):
    """Faust's table manager with `RewindThenResumeRecovery` (the `TableManager` setting)."""

    @property
    def recovery(self) -> Recovery:
        """The recovery service, created on first use as Faust's is."""
        if self._recovery is None:
            self._recovery = RewindThenResumeRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop
            )
        return self._recovery
