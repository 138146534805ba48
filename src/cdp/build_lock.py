"""The warehouse's build lock: one build per warehouse file at a time.

The dbt plugin (:mod:`cdp.plugin`) takes it in ``initialize``, once the
preflight (:mod:`cdp.preflight`) has passed and before dbt-duckdb opens the
warehouse: ``<warehouse>.lock`` beside the file, an exclusive non-blocking
``flock``. A second build on the same warehouse, in another process, stops at
once naming the holder; consecutive in-process dbt commands (dbtRunner) reuse
the lock. The kernel drops it when the holding process ends, also on SIGKILL,
so a crashed build never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
from pathlib import Path
from typing import Final

from cdp.preflight import ConfigurationError

LOCK_SUFFIX: Final = ".lock"

# Held build locks of this process: resolved warehouse path -> open descriptor.
# A lock is kept until the process ends, so consecutive in-process dbt
# commands on one warehouse (dbtRunner) reuse it; another process is refused.
_BUILD_LOCKS: dict[str, int] = {}
_BUILD_LOCKS_GUARD: Final = threading.Lock()


def lock_path(warehouse: Path) -> Path:
    """The build lock of a warehouse file: ``<warehouse>.lock`` next to it."""
    return warehouse.with_name(warehouse.name + LOCK_SUFFIX)


def acquire_build_lock(warehouse: Path) -> Path:
    """Take the warehouse's build lock (``flock``, exclusive, non-blocking) for this process.

    A second build on the same warehouse, in another process, fails at once
    with a message naming the holder. The lock is released when the process
    that holds it ends (also on SIGKILL: the kernel drops it), so a crashed
    build never leaves a stale lock. Creates the warehouse folder (0700) if needed.
    """
    folder = warehouse.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    path = lock_path(warehouse)
    key = str(path.resolve())
    with _BUILD_LOCKS_GUARD:
        if key in _BUILD_LOCKS:
            return path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 200, 0).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise ConfigurationError(
                f"cdp: another build is running on the warehouse {warehouse} "
                f"({holder or 'holder unknown'}); wait for it to finish and run again. "
                f"The lock ({path}) is released when that process ends"
            ) from None
        os.ftruncate(fd, 0)
        started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode("ascii"), 0)
        _BUILD_LOCKS[key] = fd
    return path


def release_build_locks() -> None:
    """Release every build lock this process holds (after its dbt commands are done)."""
    with _BUILD_LOCKS_GUARD:
        for fd in _BUILD_LOCKS.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock
        _BUILD_LOCKS.clear()
