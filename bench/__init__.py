"""`hub bench`: the hub's performance scenarios P1-P6, each against a baseline in the same run."""
