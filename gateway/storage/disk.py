"""Room on the disks the gateway writes to (the SQLite database's folder, the maildir): a
MAIL is refused 452 4.3.1 while any of them has less free than the reserve, so that a disk
filling up turns senders away before a write fails halfway."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.obs.log import get_logger

_log = get_logger("disk")
RECHECK_SECONDS = 1.0  # statvfs at most this often, however many MAILs come


class DiskRoom:
    def __init__(self, paths: Sequence[Path], reserve: int) -> None:
        self._paths = [path for path in paths if reserve > 0]
        self._reserve = reserve
        self._checked_at = -RECHECK_SECONDS
        self._room = True

    def has_room(self) -> bool:
        now = time.monotonic()
        if not self._paths or now - self._checked_at < RECHECK_SECONDS:
            return self._room
        self._checked_at = now
        short = [path for path in self._paths if _free(path) < self._reserve]
        if bool(short) == self._room:  # changed: said once, not at every MAIL
            if short:
                _log.warning("disk_nearly_full", paths=[str(p) for p in short])
            else:
                _log.info("disk_room_again")
        self._room = not short
        return self._room


def _free(path: Path) -> int:
    """Bytes an unprivileged writer may still use where `path` is (or would be)."""
    for candidate in (path, *path.parents):
        try:
            stats = os.statvfs(candidate)
        except OSError:
            continue
        return stats.f_bavail * stats.f_frsize
    return 1 << 62  # nowhere to measure: no reason to refuse
