"""Incremental checkpoints of the program table: one key per program, a versioned manifest.

The table service marks a program id dirty (``dirty``) whenever its row, owner or pending
pin changes or goes away. A checkpoint (``write``) writes only the dirty ids, oldest
first and at most ``max_keys`` of them (the rest stay dirty for the next one), so its
cost follows what changed, not how many rows the table holds:

- ``MANIFEST_KEY``: JSON ``{"format": 2, "generation": ..., "counters": {...}}``;
- ``ROWS_PREFIX + generation + "/" + program id``: the pickled entry
  ``(program_id, row or None, has_owner, owner, pending_pin)``; an id with none of
  those left has its key deleted, so a deletion is restored as a deletion.

The manifest is written before the entries, so entries only ever exist under a
generation a manifest named. ``restore`` reads the manifest and every entry of its
generation; a manifest of another format (or the unversioned whole-table pickle of
earlier versions) is refused with a logged error and gives an empty table under a new
generation, whose keys cannot collide with the refused ones.

The store is anything with ``get``/``put``/``delete``/``scan`` (``MemoryStore`` here, the
GCS key-value store in ``serve/program_table.py``).
"""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from autellix_ray.core.program_table import ProgramRow, ProgramTable

logger = logging.getLogger(__name__)

FORMAT = 2
MANIFEST_KEY = b"program-table/manifest"
ROWS_PREFIX = b"program-table/rows/"
LEGACY_KEY = b"program-table-checkpoint"  # format 1: the whole state pickled under one key
MAX_KEYS_PER_CHECKPOINT = 1000

# (program_id, row, has_owner, owner, pending pin); None when nothing is left for the id
Entry = tuple[str, ProgramRow | None, bool, str | None, str | None]


class KeyValueStore(Protocol):
    """Where checkpoints go. A store may also queue its writes: it then has ``backlog()``
    (writes not yet done; the service skips a periodic checkpoint meanwhile, so changes coalesce
    in the dirty set) and ``flush()`` (wait for every write queued so far)."""

    def get(self, key: bytes) -> bytes | None: ...
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class MemoryStore:
    """A dict standing in for the GCS key-value store (tests, single-process use)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.num_puts = 0
        self.num_deletes = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.num_puts += 1
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.num_deletes += 1
        self.data.pop(key, None)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, v) for k, v in self.data.items() if k.startswith(prefix)])


@dataclass
class Restored:
    """What a checkpoint held (read back from the store by a restarted table)."""

    rows: list[ProgramRow] = field(default_factory=list)  # program rows, any order
    owners: dict[str, str | None] = field(default_factory=dict)  # program id -> owner (None: anyone)
    pending_pins: dict[str, str] = field(default_factory=dict)  # program id -> engine (programs with no row)
    counters: dict[str, int] = field(default_factory=dict)  # num_reports, num_evicted, num_collected

    def load_into(self, table: ProgramTable) -> None:
        """Put the rows into an empty ``table``, with its eviction and collection counters."""
        table.load(self.rows, self.counters.get("num_evicted", 0), self.counters.get("num_collected", 0))


def _key_part(program_id: str) -> bytes:
    return program_id.encode("utf-8", "surrogatepass")  # ids come from JSON: lone surrogates allowed


class TableCheckpoint:
    def __init__(self, store: KeyValueStore, max_keys: int = MAX_KEYS_PER_CHECKPOINT) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.store = store
        self.max_keys = max_keys
        self.generation = secrets.token_hex(8)  # a fresh namespace for this table's keys
        self.dirty: dict[str, None] = {}  # insertion-ordered set: oldest change first
        self.keys_written = 0
        self.keys_deleted = 0

    @property
    def prefix(self) -> bytes:
        return ROWS_PREFIX + self.generation.encode() + b"/"

    # -- write --------------------------------------------------------------
    def write(self, entry_of: Callable[[str], Entry | None], counters: dict[str, int],
              first: Iterable[str] = ()) -> int:
        """Write ``first`` and up to ``max_keys`` other dirty ids; return the bytes written.

        ``entry_of(program_id)`` gives an id's current entry, or None if nothing is left
        of it (its key is deleted).
        """
        ids = list(dict.fromkeys(itertools.chain(first, itertools.islice(self.dirty, self.max_keys))))
        manifest = json.dumps({"format": FORMAT, "generation": self.generation, "counters": counters}).encode()
        self.store.put(MANIFEST_KEY, manifest)
        written = len(manifest)
        prefix = self.prefix
        for program_id in ids:
            self.dirty.pop(program_id, None)
            entry = entry_of(program_id)
            key = prefix + _key_part(program_id)
            if entry is None:
                self.store.delete(key)
                self.keys_deleted += 1
            else:
                data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
                self.store.put(key, data)
                self.keys_written += 1
                written += len(data)
        return written

    # -- restore ------------------------------------------------------------
    def restore(self) -> Restored:
        """The last checkpoint's contents; empty (and logged) when there is none it can read."""
        raw = self.store.get(MANIFEST_KEY)
        if raw is None:
            if self.store.get(LEGACY_KEY) is not None:
                logger.error("program table: found an unversioned whole-table checkpoint (format 1); "
                             "this version reads format %d only: starting with an empty table", FORMAT)
            return Restored()
        try:
            manifest = json.loads(raw)
            fmt = manifest.get("format") if isinstance(manifest, dict) else None
        except ValueError:
            fmt = "unreadable"
        if fmt != FORMAT:
            logger.error("program table: checkpoint format %r is not the format %d this version reads: "
                         "starting with an empty table (the old checkpoint's keys are left untouched)",
                         fmt, FORMAT)
            return Restored()
        self.generation = str(manifest["generation"])
        restored = Restored(counters=dict(manifest.get("counters", {})))
        for key, value in self.store.scan(self.prefix):
            try:
                program_id, row, has_owner, owner, pin = pickle.loads(value)
            except Exception:
                logger.exception("program table: skipping unreadable checkpoint entry %r", key[:300])
                continue
            if row is not None:
                restored.rows.append(row)
            if has_owner:
                restored.owners[program_id] = owner
            if pin is not None:
                restored.pending_pins[program_id] = pin
        return restored
