"""Wait for an app to answer: poll a URL (e.g. ``<base>/v1/models``) until it returns 200."""

from __future__ import annotations

import time


def wait_ready(url: str, timeout_s: float = 600, *, interval_s: float = 2.0,
               headers: dict[str, str] | None = None) -> None:
    """Return once ``GET url`` answers 200; raise ``TimeoutError`` after ``timeout_s``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"the app did not come up in {timeout_s} s ({url})")
