"""structlog JSON lines, with the session and message ids bound as context."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from gateway.core.addresses import ADDRESS_IN_TEXT

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def redact_addresses(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Last line of defence: no address-shaped text leaves in a log line, not even inside a
    traceback or a database's error detail."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "@" in value:
            event_dict[key] = ADDRESS_IN_TEXT.sub("<address>", value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_addresses,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # One write per line: the lines of several processes sharing stderr never mix.
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiosmtpd logs whole SMTP commands (addresses included) at debug level: keep it quiet.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # aioimaplib logs every byte it sends and receives (messages and all) at debug level.
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def silenced(name: str) -> logging.Logger:
    """A library's stdlib logger whose records go nowhere: for libraries that log what the
    gateway reports in its own words (dkimpy's failed signatures, pypdf's damaged files)."""
    logger = logging.getLogger(name)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger
