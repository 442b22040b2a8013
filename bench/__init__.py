"""`hub bench`: the hub's performance scenarios, each against a baseline in the same run."""
