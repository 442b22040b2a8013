"""The demo inbox page at `/`: static HTML and JS that use only the public API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
# The page talks only to this origin (REST and the WebSocket); nothing inline, nothing remote.
CSP = (
    "default-src 'self'; connect-src 'self'; style-src 'self'; "
    # Attachments are fetched with the token and shown from blob: URLs.
    "img-src 'self' data: blob:; media-src blob:; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def inbox_page() -> FileResponse:
    """The inbox page; a token comes from `?token=` or is pasted in."""
    return FileResponse(
        STATIC / "index.html",
        headers={
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def mount_page(api: FastAPI) -> None:
    """Serve `/` and `/static/*`."""
    api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
