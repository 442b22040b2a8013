"""One batch of source records: decoding, the table's values, the store writes, user events,
replies and statuses, and running, retrying and pipelining batches (no Faust here)."""
