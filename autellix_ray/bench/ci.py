"""95% confidence intervals for repeated benchmark runs (pure functions).

Repeats are the independent replicates: a mean over repeats gets Student's t interval
(n - 1 degrees of freedom); a ratio of two variants measured side by side in the same
repeat is taken per repeat and summarised by its geometric mean, with the t interval of
the log-ratios mapped back. Fewer than two values give no interval (``lo``/``hi`` None);
no values give no estimate (None: print it as "undefined"). ``source_commit`` names the
code a result was measured on.
"""

from __future__ import annotations

import math
import statistics
import subprocess
from pathlib import Path
from typing import Any

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile (a Cornish-Fisher step from 1.96 above 30 df)."""
    if df < 1:
        raise ValueError("a confidence interval needs at least 2 values")
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df)


def _interval(values: list[float]) -> tuple[float, float | None]:
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    return m, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def mean_ci(values: list[float]) -> dict[str, Any]:
    """Mean with its 95% t interval."""
    out: dict[str, Any] = {"mean": None, "lo": None, "hi": None, "n": len(values)}
    if values:
        m, half = _interval([float(v) for v in values])
        out["mean"] = m
        if half is not None:
            out.update(lo=m - half, hi=m + half)
    return out


def ratio_ci(numerators: list[float], denominators: list[float]) -> dict[str, Any]:
    """Paired ratios num/den (one per repeat): geometric mean and 95% t interval of the logs.
    Pairs with a non-positive side are skipped (``n`` counts the rest)."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True) if n > 0 and d > 0]
    out: dict[str, Any] = {"geomean": None, "lo": None, "hi": None, "n": len(ratios), "values": ratios}
    if ratios:
        m, half = _interval([math.log(r) for r in ratios])
        out["geomean"] = math.exp(m)
        if half is not None:
            out.update(lo=math.exp(m - half), hi=math.exp(m + half))
    return out


def fmt(stat: dict[str, Any], key: str = "mean", digits: int = 3) -> str:
    """``x [lo, hi]``, ``x`` without an interval, or ``undefined`` without an estimate."""
    if stat.get(key) is None:
        return "undefined"
    if stat.get("lo") is None:
        return f"{stat[key]:.{digits}f}"
    return f"{stat[key]:.{digits}f} [{stat['lo']:.{digits}f}, {stat['hi']:.{digits}f}]"


def source_commit() -> str:
    """The git commit of this checkout, with "+uncommitted changes" when the package differs
    from it ("unknown" outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "autellix_ray").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" +uncommitted changes" if dirty else "")
