"""`hub media gc`: delete the blobs no attachment names any more (hubcore/media_gc.py,
docs/media.md "Collecting unused blobs"), a bounded batch per pass."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer

from hubcore.settings import settings_or_exit

media_app = typer.Typer(no_args_is_help=True, help="Attachments' bytes (docs/media.md).")


@media_app.command("gc")
def media_gc(
    batch: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Blobs per pass (default HUB_MEDIA_GC_BATCH)."),
    ] = None,
    passes: Annotated[
        int, typer.Option(min=1, help="At most this many passes (each one batch).")
    ] = 1_000,
) -> None:
    """Walk the blob store once (or `passes` batches of it), deleting blobs that no
    attachment names and no put touched within HUB_MEDIA_GC_GRACE; prints a JSON summary.
    Safe beside running fetches and uploads, and in several processes at once."""
    from hubcore.blobs import GridFSBlobStore, blob_store
    from hubcore.media_gc import SweepPass, sweep
    from hubcore.mongo import create_client, database

    settings = settings_or_exit()
    if settings.blob_store != "gridfs":
        typer.echo("hub: only the GridFS store is swept (HUB_BLOB_STORE=gridfs)", err=True)
        raise typer.Exit(2)

    async def main() -> SweepPass:
        client = create_client(settings.mongo_url)
        total = SweepPass()
        try:
            db = database(client, settings)
            store = blob_store(settings, db)
            assert isinstance(store, GridFSBlobStore)
            after = ""
            for _ in range(passes):
                done = await sweep(
                    db,
                    store,
                    batch=batch or settings.media_gc_batch,
                    grace=settings.media_gc_grace,
                    after=after,
                )
                total.uploads_dropped += done.uploads_dropped
                total.blobs_looked_at += done.blobs_looked_at
                total.blobs_deleted += done.blobs_deleted
                total.bytes_deleted += done.bytes_deleted
                total.after = done.after
                if done.after is None:
                    break
                after = done.after
        finally:
            await client.close()
        return total

    typer.echo(json.dumps(asdict(asyncio.run(main()))))
