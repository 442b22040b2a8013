"""Pollers: platform APIs read on a schedule for accounts with `mode == "poll"`."""
