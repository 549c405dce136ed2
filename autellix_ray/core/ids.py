"""Limits and parsing of the ids a call carries (program, thread, parent threads).

One home for them: the HTTP ingress validates with them (bad input is a 400), the engine
plugin cleans with them (a bad label is ignored, never fatal) and the program table
bounds its keys with them.
"""

from __future__ import annotations

from typing import Any

MAX_ID_CHARS = 256  # program, thread and session ids: 1-256 characters
MAX_PARENTS = 64  # parent threads one call may name


def clean_id(value: Any) -> str | None:
    """``value`` as an id (ints become strings), or None when it is not a valid one."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value)
        if 0 < len(text) <= MAX_ID_CHARS:
            return text
    return None


def split_parent_ids(value: Any) -> Any:
    """Parent thread ids given as one comma-separated string become a list; anything else is
    returned as it is (the caller decides whether it is valid)."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return value
