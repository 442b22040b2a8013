"""P1's baseline: a bare FastAPI endpoint that parses the webhook's JSON and answers 200.

    python -m bench.baseline_app --port 8123

Served exactly as `hub connectors` serves its app (`uvicorn.run` with the same options),
so the only difference left is the hub's work: account lookup, signature check,
validation, normalization, Kafka produce and its ack, logging and metrics.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def create_app() -> FastAPI:
    """The bare app: the same route shape as the connectors' webhook."""
    app = FastAPI(title="bare webhook baseline")

    @app.post("/webhooks/{platform}/{account_id}")
    async def receive(platform: str, account_id: str, request: Request) -> Response:
        """Parse the body as JSON and say ok."""
        body = orjson.loads(await request.body())
        return JSONResponse({"status": "ok", "fields": len(body)})

    @app.get("/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    return app


def main() -> None:
    """Serve the bare app on 127.0.0.1:--port."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
