"""The fetch jobs of freshly produced raw messages, one per attachment (docs/media.md).

Only the connectors make them, as they produce a message: a replay of the history
topics makes none, so it fetches nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from hubcore.settings import Settings
from schemas import MediaFetch, RawMessage
from schemas.base import utc_now


def fetch_jobs(
    topic: str,
    records: Sequence[RawMessage],
    parts: Mapping[str, bytes] | None,
    settings: Settings,
) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of each attachment's job, keyed by the hub user id."""
    jobs: list[tuple[str, bytes, bytes]] = []
    now = None
    for record in records:
        for index, attachment in enumerate(record.attachments):
            now = now or utc_now()
            data = (parts or {}).get(attachment.id)
            inline = data is not None and len(data) <= settings.media_inline_max_bytes
            # A larger part, or one of a mail cut short, is fetched by IMAP from where the
            # mail is (connectors/media/imap.py); one known to be over the cap is not.
            by_imap = (
                settings.media_imap_fetch
                and attachment.source.startswith("imap:")
                and (data is None or len(data) <= settings.media_max_bytes)
            )
            job = MediaFetch(
                user_id=record.user_id,
                platform=record.platform,
                account_id=record.account_id,
                conversation_id=record.conversation_id,
                message_id=record.id,
                index=index,
                attachment=attachment,
                data=base64.b64encode(data).decode() if inline and data is not None else None,
                too_large=data is not None and not inline and not by_imap,
                requested_at=now,
            )
            jobs.append((topic, record.user_id.encode(), job.to_json()))
    return jobs
