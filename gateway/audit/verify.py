"""`archive verify`: the whole archive checked against its log. Every stored body must hash
to its key; every leaf is recomputed from the record as it is stored now and must match the
leaf appended; the tree rebuilt from those leaves must have each checkpoint's root at that
checkpoint's size, and each checkpoint must carry a valid signature of a known key. Since
every root is rebuilt from one sequence of leaves, each checkpoint's tree is a prefix of the
next one's: a history rewritten after a checkpoint cannot pass."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from gateway.audit.signing import verify
from gateway.core.merkle import Frontier, leaf_hash
from gateway.core.records import SignedCheckpoint
from gateway.storage import archive, archive_log
from gateway.storage.database import Database

MAX_PROBLEMS = 20  # named, of however many there are


@dataclass
class Verification:
    records: int = 0
    bodies: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    root: str = ""
    unlogged: int = 0  # committed records the next checkpoint appends
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def verify_archive(
    database: Database,
    public_keys: dict[str, str],
    progress: Callable[[str, int], None] | None = None,
) -> Verification:
    """`public_keys`: the archive keys' base64 public keys by key id (those an auditor
    pinned, or the ones the database holds)."""
    report = Verification()
    step = progress or (lambda _what, _count: None)
    with database.read_connection() as connection:
        for key, data in archive.stored_bodies(connection):
            report.bodies += 1
            if hashlib.sha256(data).hexdigest() != key:
                report.problem(f"body {key[:16]}: its bytes are not the ones stored under it")
            step("bodies", 1)
        for message_id, which in archive.missing_bodies(connection):
            report.problem(f"message {message_id}: its bytes as {which} are gone")
        checkpoints = list(archive_log.checkpoints(connection))
        report.checkpoints = len(checkpoints)
        sizes = {checkpoint.tree_size for checkpoint in checkpoints}
        known = _Known(
            archive_log.other_records(connection), archive_log.purged_message_ids(connection)
        )
        records = archive_log.logged_records(connection)
        frontier, roots = _check_leaves(records, known, sizes, report, step)
        _check_checkpoints(checkpoints, roots, public_keys, report)
        head = archive_log.head(connection)
        if (head.size, head.root()) != (frontier.size, frontier.root()):
            report.problem(
                f"log head: says {head.size} records, the log holds {frontier.size} "
                "(or their hashes differ)"
            )
        report.unlogged = archive_log.unlogged(connection)
    report.tree_size, report.root = frontier.size, frontier.root().hex()
    return report


@dataclass(frozen=True, slots=True)
class _Known:
    others: dict[tuple[str, int], bytes]  # holds, releases and purges, as logged
    purged: set[int]  # messages a purge record names


def _check_leaves(
    records: Iterator[archive_log.LoggedRecord],
    known: _Known,
    sizes: set[int],
    report: Verification,
    step: Callable[[str, int], None],
) -> tuple[Frontier, dict[int, bytes]]:
    """The tree rebuilt from the records as stored now, and its root at each of `sizes`."""
    frontier = Frontier()
    roots: dict[int, bytes] = {}
    for record in records:
        where = f"record {record.seq} ({record.kind} {record.ref_id})"
        if record.seq != frontier.size:
            report.problem(f"record {frontier.size}: missing from the log (next is {record.seq})")
            while frontier.size < record.seq:  # keep the positions: later roots then fail
                frontier.append(b"\0" * 32)
        frontier.append(_leaf(record, known, where, report))
        report.records += 1
        if frontier.size in sizes:
            roots[frontier.size] = frontier.root()
        step("records", 1)
    return frontier, roots


def _check_checkpoints(
    checkpoints: list[SignedCheckpoint],
    roots: dict[int, bytes],
    public_keys: dict[str, str],
    report: Verification,
) -> None:
    previous = 0
    for checkpoint in checkpoints:
        where = f"checkpoint at size {checkpoint.tree_size}"
        public = public_keys.get(checkpoint.key_id)
        if public is None:
            report.problem(f"{where}: signed by key {checkpoint.key_id}, which is not known")
        elif not verify(public, checkpoint.text(), checkpoint.signature):
            report.problem(f"{where}: its signature does not verify")
        if checkpoint.tree_size < previous:
            report.problem(f"{where}: smaller than the checkpoint before it")
        previous = checkpoint.tree_size
        root = roots.get(checkpoint.tree_size)
        if root is None:
            report.problem(f"{where}: the log holds fewer records (records were deleted)")
        elif root != checkpoint.root_hash:
            report.problem(f"{where}: the log up to it is not the one that was signed")


def _leaf(
    record: archive_log.LoggedRecord, known: _Known, where: str, report: Verification
) -> bytes:
    """The leaf as the record stands now; the stored one where it cannot be recomputed (a
    purged message: its tombstone) or is gone (named as a problem)."""
    if record.kind != "message":
        other = known.others.get((record.kind, record.ref_id))
        if other is None:
            report.problem(f"{where}: the record is gone")
            return record.leaf_hash
        recomputed = leaf_hash(other)
    elif record.message is None:
        report.problem(f"{where}: the record is gone")
        return record.leaf_hash
    else:
        if record.log_seq != record.seq:
            report.problem(f"{where}: the record names place {record.log_seq} in the log")
        if record.message["purged_at"] is not None:
            if record.ref_id not in known.purged:
                report.problem(f"{where}: marked purged, and no purge names it")
            return record.leaf_hash
        recomputed = leaf_hash(archive_log.message_record(record.message))
    if recomputed != record.leaf_hash:
        report.problem(f"{where}: the stored record differs from the one logged")
    return recomputed
