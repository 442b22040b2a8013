"""Where a batch's results go: the store's message writes and projections, the projection
sink beside the batch loop, and the output records' sinks (Kafka, or nowhere)."""
