"""Platform adapters: authenticity checks and normalization into `schemas.RawMessage`."""

from __future__ import annotations

from connectors.platforms import generic, slack, telegram, whatsapp
from connectors.platforms.base import Ignored, WebhookOutcome, WebhookPlatform

# Platforms that deliver by webhook (email is polled only).
WEBHOOK_PLATFORMS: dict[str, WebhookPlatform] = {
    module.__name__.rsplit(".", 1)[1]: WebhookPlatform(
        module.__name__.rsplit(".", 1)[1], module.verify, module.parse
    )
    for module in (telegram, whatsapp, slack, generic)
}

__all__ = ["WEBHOOK_PLATFORMS", "Ignored", "WebhookOutcome", "WebhookPlatform"]
