"""The REST API of the gateway (FastAPI routers, request and response models)."""
