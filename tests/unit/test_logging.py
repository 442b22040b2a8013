"""Log output as an operator sees it (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from hubcore.logging import configure_logging


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    structlog.reset_defaults()


# Built, not written out: a traceback quotes source lines, and must quote no value.
SECRET = "".join(["p\u00e4ss", "wort-", "hunter", "2"])


def _login(password: str) -> None:
    password.encode("ascii")  # what imaplib does with a LOGIN argument


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_traceback_never_prints_local_values(
    fmt: str, restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-ASCII IMAP password raised in imaplib, and the console's rich traceback
    printed every frame's locals: the password, at every poll (issue 22)."""
    configure_logging("info", fmt)
    try:
        _login(SECRET)
    except UnicodeEncodeError:
        structlog.get_logger("test").exception("poll crashed")
    err = capsys.readouterr().err
    assert "UnicodeEncodeError" in err and "_login" in err  # still a useful traceback
    assert SECRET not in err and "hunter2" not in err
