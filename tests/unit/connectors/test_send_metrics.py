"""The send metrics' labels stay closed sets: every reason a `SendError` is raised with is
a known one, and the platform label is the schema's closed `Platform`."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from connectors.errors import SendError
from connectors.outbound.metrics import SEND_FAILURE_REASONS, failure_reason
from connectors.outbound.senders import SENDERS
from schemas.outbound import OutboundMessage

ROOT = Path(__file__).resolve().parents[3]


def reasons_in_source() -> set[str]:
    """Each literal `reason=` a SendError (or the reply's own failure) is made with."""
    found: set[str] = set()
    for path in [*(ROOT / "connectors" / "outbound").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "reason":
                    values = [kw.value]
                    if isinstance(kw.value, ast.IfExp):
                        values = [kw.value.body, kw.value.orelse]
                    found |= {str(v.value) for v in values if isinstance(v, ast.Constant)}
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            if name == "_no_call" and isinstance(node.args[2], ast.Constant):
                found.add(str(node.args[2].value))
    return found


def test_every_reason_raised_is_a_label() -> None:
    used = reasons_in_source()
    assert len(used) >= 10  # the walk found the raise sites
    assert used <= SEND_FAILURE_REASONS, used - SEND_FAILURE_REASONS


def test_an_unknown_reason_counts_as_other() -> None:
    assert failure_reason("rejected") == "rejected"
    assert failure_reason("anything a platform says") == "other"
    assert SendError("x").reason == "other"


def test_platforms_are_the_senders() -> None:
    platforms = set(typing.get_args(OutboundMessage.model_fields["platform"].annotation))
    assert platforms == set(SENDERS)
