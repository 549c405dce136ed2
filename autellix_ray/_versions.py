"""The release check both compat modules make at import (``serve/_compat.py``, ``vllm/_compat.py``)."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def require_release(version: str, pinned: str, package: str, needs: str, relies_on: str) -> None:
    """Raise ImportError unless ``version`` is release ``pinned`` (any local suffix: ``0.32.0+cpu``).

    The message: "<package> needs <needs>, found <version>: <relies_on> that change between
    releases (see <package's path>/_compat.py)".
    """
    try:
        base = Version(version).base_version
    except InvalidVersion:
        base = None
    if base != pinned:
        raise ImportError(
            f"{package} needs {needs}, found {version!r}: {relies_on} that change between releases "
            f"(see {package.replace('.', '/')}/_compat.py)"
        )
