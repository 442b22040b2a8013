"""Streams: the Faust app aggregating raw messages into MongoDB, unread tables and user events."""
