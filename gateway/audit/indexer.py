"""The search indexer: reads the archive log's new message leaves, decodes each message's
subject and text (every text part, HTML as text, text attachments) and indexes their words
(gateway.storage.search). The parsing runs outside any transaction; the write is short and
checks that no other indexer got there first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gateway.audit.checkpointer import Checkpointer
from gateway.core.terms import index_terms
from gateway.obs.log import get_logger
from gateway.pipeline.content import read_content
from gateway.pipeline.parse import MessageFormatError, parse_message
from gateway.storage import search
from gateway.storage.database import Database

_log = get_logger("search")


@dataclass(frozen=True, slots=True)
class MessageWords:
    subject: str
    terms: str


def message_words(raw: bytes | None) -> MessageWords:
    """The decoded subject and the words of a message as stored (none if it cannot be
    read: it is still found by every other filter)."""
    if raw is None:
        return MessageWords("", "")
    try:
        content = read_content(parse_message(raw))
    except (MessageFormatError, ValueError, LookupError):
        return MessageWords("", "")
    written = "\n".join(part for block in content.blocks for part in (block.text, block.quoted))
    return MessageWords(content.subject, index_terms(written))


class Indexer:
    def __init__(
        self, database: Database, *, interval: float = 10.0, batch: int = search.INDEX_BATCH
    ) -> None:
        self._db = database
        self._interval = interval
        self._batch = batch

    def run_once(self, progress: Callable[[int], None] | None = None) -> int:
        """Indexes everything logged so far; how many messages it indexed."""
        indexed = 0
        while True:
            with self._db.read_connection() as connection:
                stretch = search.pending(connection, self._batch)
            if stretch.start == stretch.end:
                return indexed
            texts = []
            for message in stretch.messages:
                words = message_words(message.raw)
                texts.append(
                    search.IndexedText(
                        message.message_id, words.subject, words.terms, message.rule_hits
                    )
                )
            with self._db.writing() as connection:
                if not search.add(connection, stretch, texts):
                    continue  # another indexer did this stretch: read on from where it is
            indexed += len(texts)
            if progress is not None:
                progress(len(texts))

    async def run(self) -> None:
        """Every `interval` seconds, until cancelled; a failed run is logged and retried."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                indexed = await asyncio.to_thread(self.run_once)
            except Exception as error:  # the database is down: the next run catches up
                _log.error("search_index_failed", exc_info=error)
                continue
            if indexed:
                _log.info("search_indexed", messages=indexed)


def bring_up_to_date(database: Database, checkpointer: Checkpointer) -> None:
    """Every committed record appended to the log and indexed, as a search run now wants
    (`serve` does both every checkpoint interval)."""
    checkpointer.run_once()
    Indexer(database).run_once()
