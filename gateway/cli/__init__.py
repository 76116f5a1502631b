"""The bsm-gateway command: thin wrappers that parse arguments, call services and print."""

from __future__ import annotations

import sys

from gateway.cli import (  # noqa: F401 (add commands)
    archive,
    archive_search,
    auditors,
    imap,
    keys,
    policy,
    registry,
    reports,
    run,
    standing,
    suppression,
)
from gateway.cli.common import app


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
