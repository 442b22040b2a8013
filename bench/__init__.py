"""`hub bench`: the hub's performance scenarios P1-P7, each against a baseline in the same run."""
