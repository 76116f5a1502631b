"""The archive's search index (owner of search_head, message_text, message_fts on SQLite,
message_rules) and the searches auditors run on it.

The index follows the archive log: it reads the leaves of messages in log order, from
`search_head.next_seq` on, so no committed message is missed however late it committed,
and it costs intake nothing. Its words are made by core.terms; each store only compares
them (FTS5 on SQLite, a tsvector with a GIN index on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    Row,
    Select,
    Text,
    TextClause,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    table,
    text,
    update,
)

from gateway.core.terms import Phrase
from gateway.storage import archive
from gateway.storage.schema import (
    Buyer,
    LogHead,
    LogLeaf,
    Message,
    MessageRule,
    MessageText,
    Order,
    Pair,
    SearchHead,
    table_of,
)

INDEX_BATCH = 500
# Bytes of messages one stretch reads at most (at least one message): 500 records of 25 MB
# would otherwise be 12 GB in the archive keeper's memory at once.
INDEX_BYTES = 32 * 1024 * 1024
TOTAL_CAP = 1_000  # counted exactly up to here; past it the total says "at least"
FEW = 5_000  # records the other filters leave, few enough to look at each one's words
_HEAD_ID = 1

_MESSAGES = table_of(Message)
_TEXT = table_of(MessageText)
_RULES = table_of(MessageRule)
_SEARCH_HEAD = table_of(SearchHead)
_LOG = table_of(LogLeaf)
_LOG_HEAD = table_of(LogHead)
_PAIRS = table_of(Pair)
_BUYERS = table_of(Buyer)
_ORDERS = table_of(Order)
_FTS = table("message_fts", column("rowid", BigInteger), column("terms", Text))  # SQLite


@dataclass(frozen=True, slots=True)
class Unindexed:
    """A logged message waiting for the index: its stored bytes (None once purged)."""

    message_id: int
    rule_hits: tuple[str, ...]
    raw: bytes | None


@dataclass(frozen=True, slots=True)
class Pending:
    """The next stretch of the log to index: leaves [start, end) and their messages."""

    start: int
    end: int
    messages: list[Unindexed]


@dataclass(frozen=True, slots=True)
class IndexedText:
    message_id: int
    subject: str
    terms: str  # core.terms.index_terms
    rule_hits: tuple[str, ...]


def pending(connection: Connection, limit: int = INDEX_BATCH) -> Pending:
    """Up to `limit` logged messages the index has not read yet, with their bytes as
    received (as delivered where none were kept as received)."""
    start = connection.execute(
        select(_SEARCH_HEAD.c.next_seq).where(_SEARCH_HEAD.c.id == _HEAD_ID)
    ).scalar_one()
    size = connection.execute(select(_LOG_HEAD.c.tree_size)).scalar_one()
    # Leaves of every kind, by their place: a condition on the kind would have SQLite walk
    # the (kind, ref_id) index over the whole log instead.
    leaves = connection.execute(
        select(_LOG.c.seq, _LOG.c.kind, _LOG.c.ref_id)
        .where(_LOG.c.seq >= start, _LOG.c.seq < size)
        .order_by(_LOG.c.seq)
        .limit(limit)
    ).all()
    end = leaves[-1].seq + 1 if len(leaves) == limit else size
    sizes = dict(
        connection.execute(
            select(_MESSAGES.c.id, _MESSAGES.c.size).where(
                _MESSAGES.c.id.in_([leaf.ref_id for leaf in leaves if leaf.kind == "message"])
            )
        ).all()
    )
    taken: list[Row[Any, Any, Any]] = []
    read = 0
    for leaf in leaves:
        size_of = sizes.get(leaf.ref_id, 0) if leaf.kind == "message" else 0
        if taken and read + size_of > INDEX_BYTES:
            end = leaf.seq  # the rest in the next stretch
            break
        read += size_of
        taken.append(leaf)
    leaves = [leaf for leaf in taken if leaf.kind == "message"]
    rows = connection.execute(
        select(
            _MESSAGES.c.id,
            _MESSAGES.c.rule_hits,
            func.coalesce(_MESSAGES.c.received_sha256, _MESSAGES.c.delivered_sha256).label("key"),
        ).where(_MESSAGES.c.id.in_([leaf.ref_id for leaf in leaves]))
    ).all()
    stored = archive.bodies(connection, [row.key for row in rows if row.key])
    messages = [
        Unindexed(
            row.id,
            tuple(rule for rule in row.rule_hits.split(",") if rule),
            stored.get(row.key) if row.key else None,
        )
        for row in sorted(rows, key=lambda row: row.id)
    ]
    return Pending(start, max(start, end), messages)


def add(connection: Connection, stretch: Pending, texts: Sequence[IndexedText]) -> bool:
    """Index `texts` and move the head past the stretch, unless another indexer has
    already done so since `pending` read it (then nothing is written: False)."""
    moved = connection.execute(
        update(_SEARCH_HEAD)
        .where(_SEARCH_HEAD.c.id == _HEAD_ID, _SEARCH_HEAD.c.next_seq == stretch.start)
        .values(next_seq=stretch.end)
    ).rowcount
    if not moved:
        return False
    # A message purged since `pending` read it keeps no words: the purge holds its row
    # until it commits, and this lock waits for that.
    kept = set(
        connection.execute(
            select(_MESSAGES.c.id)
            .where(
                _MESSAGES.c.id.in_([t.message_id for t in texts]), _MESSAGES.c.purged_at.is_(None)
            )
            .with_for_update(read=True)
        ).scalars()
    )
    texts = [t for t in texts if t.message_id in kept]
    if not texts:
        return True
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                "INSERT INTO message_text (message_id, subject, terms) "
                "VALUES (:message_id, :subject, to_tsvector('simple', :terms))"
            ),
            [{"message_id": t.message_id, "subject": t.subject, "terms": t.terms} for t in texts],
        )
    else:
        connection.execute(
            insert(_TEXT), [{"message_id": t.message_id, "subject": t.subject} for t in texts]
        )
        connection.execute(
            text("INSERT INTO message_fts (rowid, terms) VALUES (:message_id, :terms)"),
            [{"message_id": t.message_id, "terms": t.terms} for t in texts],
        )
    rules = [{"rule_id": r, "message_id": t.message_id} for t in texts for r in t.rule_hits]
    if rules:
        connection.execute(insert(_RULES), rules)
    return True


def forget(connection: Connection, message_ids: Sequence[int]) -> None:
    """Drop purged messages from the index: their words go with their bytes."""
    if not message_ids:
        return
    ids = list(message_ids)
    connection.execute(delete(_TEXT).where(_TEXT.c.message_id.in_(ids)))
    connection.execute(delete(_RULES).where(_RULES.c.message_id.in_(ids)))
    if connection.dialect.name != "postgresql":
        connection.execute(
            text("DELETE FROM message_fts WHERE rowid IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        )


def lag(connection: Connection) -> int:
    """Leaves of the log the index has not read yet."""
    start = connection.execute(select(_SEARCH_HEAD.c.next_seq)).scalar_one()
    size = connection.execute(select(_LOG_HEAD.c.tree_size)).scalar_one()
    return max(0, int(size) - int(start))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What an auditor asks for; every filter given must hold."""

    seller_id: int | None = None
    buyer: str | None = None  # the buyer's address
    alias: str | None = None  # an alias address, or its token
    pair_id: int | None = None
    order_ref: str | None = None
    direction: str | None = None  # as stored: seller_to_buyer, buyer_to_seller
    since: datetime | None = None
    until: datetime | None = None
    verdict: str | None = None
    rule: str | None = None
    phrases: tuple[Phrase, ...] = ()
    limit: int = 50
    offset: int = 0

    def asked(self) -> dict[str, object]:
        """The filters given, as the access log records them."""
        asked: dict[str, object] = {}
        for name in ("seller_id", "buyer", "alias", "pair_id", "order_ref", "direction",
                     "verdict", "rule", "limit", "offset"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                asked[name] = value
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                asked[name] = moment.isoformat()
        if self.phrases:
            asked["text"] = " ".join(" ".join(p.words) for p in self.phrases)
        return asked


@dataclass(frozen=True, slots=True)
class Found:
    message_id: int
    pair_id: int | None
    direction: str
    received_at: datetime
    verdict: str
    rules: tuple[str, ...]
    subject: str | None  # None: not indexed yet (or purged)


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    exact: bool  # False: there are more than TOTAL_CAP, `total` is that cap
    results: list[Found] = field(default_factory=list)


def search(connection: Connection, query: SearchQuery) -> SearchResult:
    """The records matching `query`, newest first (by archive id)."""
    conditions = _conditions(query)
    source: FromClause = _MESSAGES
    newest_first = _MESSAGES.c.id.desc()
    if query.phrases:
        matched = _matches(connection.dialect.name, query.phrases)
        if connection.dialect.name == "postgresql":
            found = select(_TEXT.c.message_id).where(matched)
            conditions.append(_MESSAGES.c.id.in_(found))
        elif _pair_filter(query) is not None and _few(connection, conditions):
            # The records of a few pairs: look in each one's words, read by its rowid
            # (FTS5 would otherwise evaluate a common word over the whole archive).
            words = select(_FTS.c.terms).where(_FTS.c.rowid == _MESSAGES.c.id)
            spaced = literal(" ") + words.scalar_subquery() + literal(" ")
            conditions.extend(func.instr(spaced, needle) > 0 for needle in _needles(query.phrases))
        else:
            # Read the index's matches newest first and stop at the page: a common word
            # matches most of the archive.
            source = _FTS.join(_MESSAGES, _MESSAGES.c.id == _FTS.c.rowid)
            conditions.append(matched)
            newest_first = _FTS.c.rowid.desc()
    # The matches, up to one past the cap, in whatever order the cheapest plan finds them.
    # Few: the page is taken from them by id. Many: they are dense enough that reading the
    # archive newest first finds a page at once, whatever the planner's estimates.
    found_ids = (
        connection.execute(
            select(_MESSAGES.c.id).select_from(source).where(*conditions).limit(TOTAL_CAP + 1)
        )
        .scalars()
        .all()
    )
    ids = sorted(found_ids, reverse=True)
    exact = len(ids) <= TOTAL_CAP
    shown = select(
        _MESSAGES.c.id,
        _MESSAGES.c.pair_id,
        _MESSAGES.c.direction,
        _MESSAGES.c.received_at,
        _MESSAGES.c.verdict,
        _MESSAGES.c.rule_hits,
        _TEXT.c.subject,
    )
    if exact:
        chosen = ids[query.offset : query.offset + query.limit]
        page = (
            shown.outerjoin(_TEXT, _TEXT.c.message_id == _MESSAGES.c.id)
            .where(_MESSAGES.c.id.in_(chosen))
            .order_by(_MESSAGES.c.id.desc())
        )
    else:
        if source is _MESSAGES and (query.since or query.until):
            # Newest first within the time given: its index serves the order too.
            newest_first = _MESSAGES.c.received_at.desc()
        page = (
            shown.select_from(source.outerjoin(_TEXT, _TEXT.c.message_id == _MESSAGES.c.id))
            .where(*conditions)
            .order_by(newest_first)
            .limit(query.limit)
            .offset(query.offset)
        )
    results = [
        Found(
            row.id,
            row.pair_id,
            row.direction,
            row.received_at,
            row.verdict,
            tuple(rule for rule in row.rule_hits.split(",") if rule),
            row.subject,
        )
        for row in connection.execute(page)
    ]
    return SearchResult(min(len(ids), TOTAL_CAP), exact, results)


def _few(connection: Connection, conditions: Sequence[ColumnElement[bool] | TextClause]) -> bool:
    """Whether the conditions leave few enough records to look in each one's words."""
    some = select(_MESSAGES.c.id).where(*conditions).limit(FEW + 1).subquery()
    return int(connection.execute(select(func.count()).select_from(some)).scalar_one()) <= FEW


def _needles(phrases: Sequence[Phrase]) -> list[str]:
    """Each phrase as it stands in a record's words between spaces (core.terms)."""
    return [" " + " ".join(p.words) + ("" if p.prefix else " ") for p in phrases]


def _conditions(query: SearchQuery) -> list[ColumnElement[bool] | TextClause]:
    """Every filter but the full text."""
    m = _MESSAGES.c
    conditions: list[ColumnElement[bool] | TextClause] = [m.purged_at.is_(None)]
    pairs = _pair_filter(query)
    if pairs is not None:
        conditions.append(m.pair_id.in_(pairs))
    if query.direction is not None:
        conditions.append(m.direction == query.direction)
    if query.since is not None:
        conditions.append(m.received_at >= query.since)
    if query.until is not None:
        conditions.append(m.received_at < query.until)
    if query.verdict is not None:
        conditions.append(m.verdict == query.verdict)
    if query.rule is not None:
        conditions.append(
            m.id.in_(select(_RULES.c.message_id).where(_RULES.c.rule_id == query.rule))
        )
    return conditions


def _pair_filter(query: SearchQuery) -> Select[tuple[int]] | None:
    """The pairs the seller, buyer, alias, pair and order filters leave (None: all)."""
    given = [
        query.seller_id is not None,
        query.buyer is not None,
        query.alias is not None,
        query.pair_id is not None,
        query.order_ref is not None,
    ]
    if not any(given):
        return None
    pairs = select(_PAIRS.c.id)
    if query.seller_id is not None:
        pairs = pairs.where(_PAIRS.c.seller_id == query.seller_id)
    if query.buyer is not None:
        buyer = select(_BUYERS.c.id).where(_BUYERS.c.address == query.buyer.strip().lower())
        pairs = pairs.where(_PAIRS.c.buyer_id.in_(buyer))
    if query.alias is not None:
        token = query.alias.strip().lower().partition("@")[0]
        pairs = pairs.where(or_(_PAIRS.c.buyer_alias == token, _PAIRS.c.seller_alias == token))
    if query.pair_id is not None:
        pairs = pairs.where(_PAIRS.c.id == query.pair_id)
    if query.order_ref is not None:
        pairs = pairs.where(
            _PAIRS.c.id.in_(select(_ORDERS.c.pair_id).where(_ORDERS.c.ref == query.order_ref))
        )
    return pairs


def _matches(dialect: str, phrases: Sequence[Phrase]) -> TextClause:
    """The condition that the index's words hold every phrase: on message_text's terms
    (PostgreSQL) or on message_fts (SQLite). The words are letters and digits only
    (core.terms), so quoting them is enough."""
    if any("'" in word or '"' in word for phrase in phrases for word in phrase.words):
        raise ValueError("a search word with a quote in it")  # core.terms never makes one
    if dialect == "postgresql":
        expression = " & ".join(
            "(" + " <-> ".join(f"''{w}''" for w in p.words) + (":*" if p.prefix else "") + ")"
            for p in phrases
        )
        # The words are written into the statement: a statement psycopg has prepared keeps
        # the plan of the first words it ran with, and a rare word's plan (the GIN index)
        # is slow for a common one. These are distinct statements, each planned for its own.
        return text(f"message_text.terms @@ to_tsquery('simple', '{expression}')")
    expression = " AND ".join(
        '"' + " ".join(p.words) + '"' + ("*" if p.prefix else "") for p in phrases
    )
    return text("message_fts MATCH :terms").bindparams(terms=expression)
