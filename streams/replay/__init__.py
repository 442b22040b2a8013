"""`hub replay` (rebuilding the projections and the table from the history topics, staged)
and `hub state-hash` (a digest of all derived state)."""
