"""Hypothesis strategies shared by the fuzz tests (webhooks, `/ws`, Socket.IO)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(*, text_size: int = 30, leaves: int = 15, nan: bool = True) -> Any:
    """Any JSON-like value: scalars, and lists and objects of them, a few levels deep."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=nan)
        | st.text(max_size=text_size),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=leaves,
    )
