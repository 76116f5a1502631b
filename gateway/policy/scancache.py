"""Compiled scan databases kept between processes: compiling the shipped lexicons takes
seconds, loading a compiled one milliseconds, and every `serve` process, reload and CLI
command that reads content needs one. Keyed by the SHA-256 of Hyperscan's version and every
expression; a file that does not load is compiled anew. The folder is the user's own under
the system's temporary folder (mode 0700, checked before anything in it is read), so a
cache nobody kept costs only a compile."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import hyperscan


def key_of(expressions: Sequence[tuple[str, str, int, int]]) -> str:
    """The key of the expressions (key, pattern, flags, shift), in their order."""
    digest = hashlib.sha256(version("hyperscan").encode())
    for expression in expressions:
        digest.update(json.dumps(expression).encode())
    return digest.hexdigest()


def load(key: str) -> tuple[hyperscan.Database, list[int]] | None:
    """The database kept under `key` and the indices of the expressions it left out."""
    folder = _folder(create=False)
    if folder is None:
        return None
    try:
        data = (folder / f"{key}.hsdb").read_bytes()
        size = int.from_bytes(data[:4], "big")
        refused = [int(i) for i in json.loads(data[4 : 4 + size])]
        return hyperscan.loadb(data[4 + size :], hyperscan.HS_MODE_BLOCK), refused
    except (OSError, ValueError, hyperscan.error):
        return None


def store(key: str, database: hyperscan.Database, refused: Sequence[int]) -> None:
    """Keeps the database for the next process; a cache that cannot be written is skipped."""
    folder = _folder(create=True)
    if folder is None:
        return
    header = json.dumps(list(refused)).encode()
    try:
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as written:
            written.write(len(header).to_bytes(4, "big") + header + hyperscan.dumpb(database))
        os.replace(written.name, folder / f"{key}.hsdb")
    except (OSError, hyperscan.error):
        return


def _folder(create: bool) -> Path | None:
    folder = Path(tempfile.gettempdir()) / f"bsm-gateway-scan-{os.getuid()}"
    try:
        if create:
            folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077
    return folder if private and info.st_uid == os.getuid() else None
