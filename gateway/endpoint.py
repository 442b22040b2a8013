"""What both socket endpoints, `/ws` (gateway/websocket.py) and `/socket.io/`
(gateway/sio.py), are built from: the same token checks, routing table, pump, resume and
connection limits, so a user's sockets of either kind are one population."""

from __future__ import annotations

from gateway.auth import TokenVerifier
from gateway.limits import ConnectionLimits
from gateway.pump import EventPump
from gateway.registry import Registry
from gateway.resume import ResumeService
from hubcore.settings import Settings


class SocketEndpoint:
    """Base of the two endpoints; `limits` is shared between them by the runtime."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier,
        registry: Registry,
        pump: EventPump,
        resume: ResumeService,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.settings = settings
        self.verifier = verifier
        self.registry = registry
        self.pump = pump
        self.resume = resume
        self.limits = limits or ConnectionLimits(settings)
        self.setup()

    def setup(self) -> None:
        """The endpoint's own parts, made from the shared ones."""
