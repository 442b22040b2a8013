"""`hub analytics report`: DuckDB queries over the exported files.

A message delivered twice (a platform retry) is one message, as in the store: rows are
deduplicated by message id, keeping the first on the topic. A message's read mark is the
first mark-read command of its owner that names it, in topic order, as the streams apply
them; time to read runs from its `receivedAt` to that command's `issuedAt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from analytics.columns import KINDS, arrow_schema

_VIEWS = {
    "raw-messages": "raw_rows",
    "commands": "command_rows",
    "user-events": "event_rows",
    "dead-letter": "dead_letters",
}

_DERIVED = """
CREATE VIEW messages AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY id ORDER BY kafka_timestamp, kafka_partition, kafka_offset) AS rn
    FROM raw_rows
    WHERE id IS NOT NULL AND platform IS NOT NULL AND received_at IS NOT NULL
) WHERE rn = 1;

CREATE VIEW read_marks AS
SELECT m.id, m.platform, m.received_at,
       arg_min(c.issued_at, (c.kafka_partition, c.kafka_offset)) AS read_at
FROM messages m
JOIN (SELECT user_id, kafka_partition, kafka_offset, issued_at, unnest(message_ids) AS mid
      FROM command_rows WHERE type = 'mark_read' AND issued_at IS NOT NULL) c
  ON c.mid = m.id AND c.user_id = m.user_id
GROUP BY m.id, m.platform, m.received_at;
"""

QUERIES: dict[str, tuple[str, str]] = {
    "hourly": (
        "Messages per platform per hour (UTC, by receipt)",
        """SELECT strftime(date_trunc('hour', received_at), '%Y-%m-%d %H:00') AS hour,
                  platform, count(*) AS messages
           FROM messages GROUP BY ALL ORDER BY hour, platform""",
    ),
    "accounts": (
        "Messages per account",
        """SELECT platform, account_id, count(*) AS messages,
                  count(DISTINCT conversation_id) AS conversations,
                  strftime(max(received_at), '%Y-%m-%d %H:%M') AS last_received
           FROM messages GROUP BY ALL ORDER BY messages DESC, account_id""",
    ),
    "time_to_read": (
        "Time to read, seconds from receipt to read mark",
        """WITH per AS (
               SELECT m.platform, r.read_at IS NOT NULL AS is_read,
                      epoch_ms(r.read_at) - epoch_ms(m.received_at) AS ms
               FROM messages m LEFT JOIN read_marks r USING (id))
           SELECT coalesce(platform, 'all') AS platform,
                  count(*) FILTER (WHERE is_read) AS read,
                  count(*) FILTER (WHERE NOT is_read) AS unread,
                  round(quantile_cont(ms, 0.5) / 1000.0, 3) AS p50_s,
                  round(quantile_cont(ms, 0.9) / 1000.0, 3) AS p90_s
           FROM per GROUP BY ROLLUP (platform)
           ORDER BY platform IS NULL, platform""",
    ),
    "conversations": (
        "Busiest conversations",
        """SELECT conversation_id, platform,
                  arg_max(conversation_title, received_at) AS title, count(*) AS messages,
                  strftime(max(received_at), '%Y-%m-%d %H:%M') AS last_received
           FROM messages GROUP BY conversation_id, platform
           ORDER BY messages DESC, conversation_id LIMIT $limit""",
    ),
    "dead_letters": (
        "Dead letters by reason",
        """SELECT coalesce(error_type, '?') AS error_type, coalesce(reason, '?') AS reason,
                  coalesce(source_topic, 'webhook ' || coalesce(source_platform, '?'))
                      AS source,
                  count(*) AS records
           FROM dead_letters GROUP BY ALL ORDER BY records DESC, error_type, reason""",
    ),
}


@dataclass(frozen=True, slots=True)
class Table:
    """One section of the report."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(slots=True)
class Report:
    root: Path
    generated_at: datetime
    files: dict[str, int]
    tables: dict[str, Table] = field(default_factory=dict)


def shown(table: Table) -> Table:
    """The table as displayed: the hourly counts pivoted to one row per hour, one column
    per platform (the long form stays in `Report` for programs)."""
    if table.key != "hourly":
        return table
    hours = sorted({row[0] for row in table.rows})
    platforms = sorted({row[1] for row in table.rows})
    counts = {(row[0], row[1]): row[2] for row in table.rows}
    rows = tuple(
        (
            hour,
            *(counts.get((hour, p), 0) for p in platforms),
            sum(counts.get((hour, p), 0) for p in platforms),
        )
        for hour in hours
    )
    return Table(table.key, table.title, ("hour", *platforms, "all"), rows)


def connect(root: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, int]]:
    """An in-memory DuckDB with one view per topic over `root`'s files (empty when none)."""
    con = duckdb.connect(":memory:")
    counts: dict[str, int] = {}
    for kind in KINDS:
        files = sorted(str(p) for p in root.glob(f"topic={kind}/day=*/p*.parquet"))
        counts[kind] = len(files)
        view = _VIEWS[kind]
        if files:
            rel = con.read_parquet(files, hive_partitioning=False, union_by_name=True)
            rel.create_view(view)
        else:
            con.register(view, arrow_schema(kind).empty_table())
    con.execute(_DERIVED)
    return con, counts


def build(root: Path, *, top: int = 10) -> Report:
    """Run every query of the report over the files under `root`."""
    con, files = connect(root)
    try:
        report = Report(root=root, generated_at=datetime.now(UTC), files=files)
        for key, (title, sql) in QUERIES.items():
            params = {"limit": top} if "$limit" in sql else None
            result = con.execute(sql, params)
            columns = tuple(d[0] for d in result.description)
            report.tables[key] = Table(key, title, columns, tuple(result.fetchall()))
        return report
    finally:
        con.close()
