"""Gateway: authenticated WebSocket and Socket.IO push of user events, and the REST API."""
