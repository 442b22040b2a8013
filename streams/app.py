"""The module Faust loads (`faust -A streams.app worker`): the app for the environment's settings.

`hub streams` does not import this module; it builds the same app from the settings it
reads at its own entry point.
"""

from __future__ import annotations

from hubcore.logging import configure_logging
from hubcore.settings import settings_or_exit
from streams.worker import create_app

_settings = settings_or_exit()
configure_logging(_settings.log_level, _settings.log_format)
app = create_app(_settings)
