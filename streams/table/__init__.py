"""The unread table as a Faust table (keys on their user's partition) and its recovery."""
