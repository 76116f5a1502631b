"""Threading headers between two sides that never see each other's Message-IDs.

Each side knows a message by the id its own client gave it (if it wrote it) or by the
gateway's id (if it received it). A reference is translated into the recipient's view;
a reference the gateway does not know is dropped, since it may name the sender's domain.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.model import Side, ThreadEntry


def map_references(
    references: Sequence[str], thread: Sequence[ThreadEntry], sender: Side
) -> tuple[str, ...]:
    by_gateway_id = {entry.gateway_id: entry for entry in thread}
    by_own_id = {
        entry.original_id: entry
        for entry in thread
        if entry.sender_side is sender and entry.original_id
    }
    mapped: list[str] = []
    for reference in references:
        entry = by_gateway_id.get(reference)
        if entry is not None:
            if entry.sender_side is sender:
                mapped.append(entry.gateway_id)
            elif entry.original_id:
                # The recipient wrote it: it knows the message by its own client's id.
                mapped.append(entry.original_id)
        elif reference in by_own_id:
            # The sender refers to its own earlier message: the recipient saw the gateway id.
            mapped.append(by_own_id[reference].gateway_id)
    return tuple(dict.fromkeys(mapped))
