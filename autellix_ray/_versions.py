"""Version pins shared by the two compat modules (``serve/_compat.py``, ``vllm/_compat.py``)."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def is_release(version: str, pinned: str) -> bool:
    """True if ``version`` is release ``pinned``, with any local suffix (``0.32.0+cpu``)."""
    try:
        return Version(version).base_version == pinned
    except InvalidVersion:
        return False
