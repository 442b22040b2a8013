"""Sending the hub's replies: the `hub.outbound` consumer, its ledger and the platform senders."""
