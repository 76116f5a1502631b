"""The leak guard: the sending party's real addresses never reach the other side.

First its addresses in inline text parts are replaced by its alias (signatures, quoted
"On ... wrote:" lines); then the final message is searched, decoded every way a client
would show it, and any address left (in a header, an attachment) refuses the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.message import EmailMessage

from gateway.pipeline.mime import leaf_parts, part_label, read_text, write_text


class LeakFound(Exception):
    def __init__(self, places: list[str]) -> None:
        super().__init__(", ".join(places))
        self.places = places


class LeakGuard:
    def __init__(self, addresses: Iterable[str], alias: str) -> None:
        self.addresses = tuple(sorted({a.lower() for a in addresses if a}))
        self.alias = alias
        self._pattern = (
            re.compile(
                "|".join(rf"(?<![\w.+-]){re.escape(a)}(?![\w-])" for a in self.addresses),
                re.IGNORECASE,
            )
            if self.addresses
            else None
        )

    def scrub_text(self, text: str) -> str:
        return self._pattern.sub(self.alias, text) if self._pattern else text

    def scrub_inline_text(self, message: EmailMessage) -> int:
        """Replace the addresses in every inline text part; returns how many parts changed."""
        if self._pattern is None:
            return 0
        changed = 0
        for part in leaf_parts(message):
            if part.get_content_maintype() != "text" or part.is_attachment():
                continue
            text = read_text(part)
            scrubbed = self._pattern.sub(self.alias, text)
            if scrubbed != text:
                write_text(part, scrubbed)
                changed += 1
        return changed

    def find(self, message: EmailMessage, content: bytes) -> list[str]:
        """Where an address is still visible in the final message (empty: nothing leaks)."""
        if not self.addresses:
            return []
        places: list[str] = []
        for part in message.walk():
            for name, value in part.raw_items():
                if self._in_text(_decoded_header(str(value))):
                    places.append(f"header {name}")
        for part in leaf_parts(message):
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            text = read_text(part) if part.get_content_maintype() == "text" else ""
            if self._in_bytes(payload) or self._in_text(text):
                places.append(part_label(part))
        if not places and self._in_bytes(content):
            places.append("message source")
        return list(dict.fromkeys(places))

    def _in_text(self, text: str) -> bool:
        lowered = text.lower()
        return any(a in lowered for a in self.addresses)

    def _in_bytes(self, data: bytes) -> bool:
        lowered = data.lower()
        return any(
            encoded in lowered
            for a in self.addresses
            for encoded in (a.encode(), a.encode("utf-16-le"), a.encode("utf-16-be"))
        )


def _decoded_header(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # undecodable encoded words: the raw text is what a client shows
        return value
