"""Guarding the streaming checkpoints: one writer each, readable, and in step with their tables.

Spark's exactly-once holds only with one running query per checkpoint, a
checkpoint it can read, and a checkpoint that belongs to the tables it writes.
Spark checks none of this across processes, so before a query starts:

- `lock`: an exclusive `flock` on `<checkpoint>/.meterlake.lock`, held by the
  process that runs the query until the query ends. A second instance on the
  same checkpoint fails at once with the holder's pid and host; the kernel
  releases the lock when the holder dies, even by `kill -9`. A checkpoint on an
  object store (`s3a://`, ...) cannot be locked there: its lock is a local file
  named after the checkpoint's URI (`<tmp>/meterlake-locks/`), which holds one
  query per checkpoint on this machine; two machines on one object-store lake are
  not detected (docs/deployment.md: one driver per lake).
- `validate`: the files Spark reads on restart (`metadata`, the latest two
  `offsets/N`, the latest `commits/N`) have Spark's format, else one clear
  error naming the damaged file.
- `check_in_step`: a fresh checkpoint (no batch planned yet) refuses to write
  into a table that already holds rows, since the new query would read its
  source from the start again and count everything twice. Delete the tables
  too (or restore the checkpoint).

The files' format is Spark's (meterlake.core.sparkinternals).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meterlake.core.errors import MeterlakeError
from meterlake.core.location import Location, ObjectPath
from meterlake.core.sparkinternals import batch_numbers, check_log_file, metadata_query_id
from meterlake.core.storage import filesystem, names_in

if TYPE_CHECKING:

    from meterlake.core.config import Config, StorageConf

log = logging.getLogger(__name__)

LOCK_NAME = ".meterlake.lock"


def is_local(path: Location | str) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file:")


def _local_path(path: Location | str) -> Path:
    text = str(path)
    return Path(text.removeprefix("file://").removeprefix("file:"))


# --------------------------------------------------------------------------- one writer


def lock_file(checkpoint: Location) -> Path:
    """The file whose flock is the checkpoint's lock: in the checkpoint's folder, or for
    a checkpoint on an object store, under this machine's temporary folder."""
    if is_local(checkpoint):
        return (_local_path(checkpoint) / LOCK_NAME).resolve()
    digest = hashlib.sha256(str(checkpoint).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "meterlake-locks" / f"{digest}.lock"


@dataclass
class _Held:
    fd: int
    count: int


_HELD: dict[Path, _Held] = {}  # this process's locks; re-entrant, so `run` can take them early
_HELD_GUARD = threading.Lock()


@dataclass
class CheckpointLock:
    """An exclusive lock on one checkpoint, held until `release` (or the process dies)."""

    path: Path
    released: bool = False

    def release(self) -> None:
        with _HELD_GUARD:
            if self.released:
                return
            self.released = True
            held = _HELD.get(self.path)
            if held is None:
                return
            held.count -= 1
            if held.count == 0:
                del _HELD[self.path]
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)


def lock(checkpoint: Location, query: str) -> CheckpointLock | None:
    """Take the checkpoint's lock, or MeterlakeError naming who holds it.

    Re-entrant within a process. A checkpoint on an object store is locked through a
    local file named after its URI (one machine's queries only)."""
    folder = _local_path(checkpoint) if is_local(checkpoint) else checkpoint
    path = lock_file(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _HELD_GUARD:
        if path in _HELD:
            _HELD[path].count += 1
            return CheckpointLock(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise MeterlakeError(
                f"the {query} query's checkpoint {folder} is in use by {holder}: one running "
                "query per checkpoint; stop that one first, or use another --lake"
            ) from None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        _HELD[path] = _Held(fd, 1)
        return CheckpointLock(path)


# --------------------------------------------------------------------------- readable


def validate(checkpoint: Location, query: str) -> None:
    """MeterlakeError, naming the file, if a file Spark reads on restart is damaged."""
    if not is_local(checkpoint):
        return
    folder = _local_path(checkpoint)
    damaged: tuple[Path, str] | None = None
    metadata = folder / "metadata"
    if metadata.exists():
        try:
            if metadata_query_id(metadata.read_text()) is None:
                damaged = (metadata, "has no query id")
        except (ValueError, IndexError):
            damaged = (metadata, "is not the JSON Spark writes")
    files = [folder / "offsets" / str(n) for n in batch_numbers(folder / "offsets")[-2:]]
    files += [folder / "commits" / str(n) for n in batch_numbers(folder / "commits")[-1:]]
    for path in files:
        if damaged:
            break
        try:
            check_log_file(path, path.parent.name)
        except ValueError as exc:
            damaged = (path, str(exc))
    if damaged:
        path, why = damaged
        raise MeterlakeError(damaged_message(query, checkpoint, f"{path} {why}"))


def damaged_message(query: str, checkpoint: Location | str, detail: str) -> str:
    return (
        f"the {query} query's checkpoint is damaged: {detail}. Restore {checkpoint} from a "
        f"backup, or start {query} over: delete the checkpoint and the tables it writes"
    )


# --------------------------------------------------------------------------- in step


def is_fresh(checkpoint: Location, storage: StorageConf | None = None) -> bool:
    """True when Spark has planned no batch in this checkpoint yet (on an object store:
    listed with `storage`'s settings)."""
    if isinstance(checkpoint, ObjectPath):
        if storage is None:
            raise ValueError(f"{checkpoint} is on an object store: its [storage] is needed")
        return not any(name.isdigit() for name in names_in(storage, checkpoint / "offsets"))
    return not batch_numbers(_local_path(checkpoint) / "offsets")


def _holds_rows(path: Location) -> bool:
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        if not DeltaTable.is_deltatable(str(path)):
            return False
        return bool(DeltaTable(str(path)).file_uris())
    except (DeltaError, OSError, ValueError) as exc:
        log.debug("cannot tell whether %s holds rows: %s", path, exc)
        return False


def check_in_step(config: Config, query: str, tables: tuple[str, ...]) -> None:
    """MeterlakeError if a fresh checkpoint would write into tables that already hold rows."""
    checkpoint = config.checkpoint(query)
    if not is_fresh(checkpoint, config.storage):
        return
    full = [t for t in tables if _holds_rows(config.table_path(t))]
    if full:
        raise MeterlakeError(
            f"the {query} query has no checkpoint ({checkpoint} is new or empty) but "
            f"{', '.join(full)} already hold{'s' if len(full) == 1 else ''} rows: starting "
            "over would count them twice. Restore the checkpoint, or delete "
            f"{', '.join(str(config.table_path(t)) for t in full)} too"
        )


def guard(config: Config, query: str, tables: tuple[str, ...]) -> CheckpointLock | None:
    """Everything above for one query: lock, then validate; the lock is released on failure."""
    checkpoint = config.checkpoint(query)
    held = lock(checkpoint, query)
    try:
        validate(checkpoint, query)
        check_in_step(config, query, tables)
    except BaseException:
        if held:
            held.release()
        raise
    return held


# --------------------------------------------------------------------------- state layout

LAYOUT_NAME = ".meterlake.layout.json"


def pin_layout(
    checkpoint: Location, query: str, layout: dict[str, object], storage: StorageConf | None = None
) -> None:
    """Hold a stateful query's checkpoint to the layout of its state (how the state
    is keyed, e.g. silver's meter_buckets): written with a fresh checkpoint, checked
    on every start. State keyed another way would be read as no state at all, every
    meter starting over, so a mismatch is one clear error instead. A checkpoint with
    batches but no layout file comes from a meterlake whose state had another layout.
    On an object store the file is read and written with `storage`'s settings."""
    pinned_text = _read_small(checkpoint / LAYOUT_NAME, storage)
    folder = checkpoint if isinstance(checkpoint, ObjectPath) else _local_path(checkpoint)
    if pinned_text is not None:
        pinned = json.loads(pinned_text)
        changed = {k: (pinned.get(k), v) for k, v in layout.items() if pinned.get(k) != v}
        if changed:
            said = "; ".join(f"{k} was {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise MeterlakeError(
                f"the {query} query's state in {folder} was written with another layout "
                f"({said}): set it back, or start {query} over: delete the checkpoint and "
                "the tables it writes"
            )
        return
    if not is_fresh(checkpoint, storage):
        raise MeterlakeError(
            f"the {query} query's checkpoint {folder} holds state from an older meterlake "
            f"(one state row per sensor); start {query} over: delete the checkpoint and the "
            "tables it writes, then run again (bronze keeps every message)"
        )
    _write_small(checkpoint / LAYOUT_NAME, json.dumps(layout, sort_keys=True) + "\n", storage)


def _read_small(path: Location, storage: StorageConf | None) -> str | None:
    """A small file of a checkpoint, local or on the store; None when absent."""
    if isinstance(path, ObjectPath):
        assert storage is not None, f"{path} is on an object store: its [storage] is needed"
        from pyarrow import fs  # type: ignore[import-untyped]

        store = filesystem(storage)
        where = f"{path.bucket}/{path.key}"
        if store.get_file_info(where).type == fs.FileType.NotFound:
            return None
        with store.open_input_stream(where) as stream:
            return bytes(stream.read()).decode("utf-8")
    local = _local_path(path)
    return local.read_text(encoding="utf-8") if local.is_file() else None


def _write_small(path: Location, text: str, storage: StorageConf | None) -> None:
    if isinstance(path, ObjectPath):
        assert storage is not None, f"{path} is on an object store: its [storage] is needed"
        with filesystem(storage).open_output_stream(f"{path.bucket}/{path.key}") as stream:
            stream.write(text.encode("utf-8"))
        return
    local = _local_path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text, encoding="utf-8")
