"""Order files from the marketplace: CSV with a header row, or JSON Lines, one order each."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from gateway.admin.schemas import OrderRow, first_error
from gateway.storage.registry import Registry, RegistryError

COLUMNS = ("seller", "buyer", "order_ref", "placed_at")


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    error: str


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"{path.name}: name it .csv or .jsonl, or give --format")


def count_rows(path: Path, fmt: str) -> int:
    """Rows to expect (for a progress bar): lines, less the CSV header."""
    with path.open("rb") as stream:
        lines = sum(1 for line in stream if line.strip())
    return max(lines - (1 if fmt == "csv" else 0), 0)


def read_orders(path: Path, fmt: str) -> Iterator[tuple[int, OrderRow | RowError]]:
    """(line number, the row or why it is unusable) for every data line; a bad line never
    stops the rest."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        if fmt == "csv":
            yield from _csv_rows(stream)
        else:
            yield from _json_rows(stream)


def _csv_rows(stream: Iterator[str]) -> Iterator[tuple[int, OrderRow | RowError]]:
    reader = csv.DictReader(stream)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        yield 1, RowError(1, f"header lacks {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        return
    for record in reader:
        line = reader.line_num
        values = {c: (record.get(c) or "").strip() for c in COLUMNS}
        yield line, _validated(line, values)


def _json_rows(stream: Iterator[str]) -> Iterator[tuple[int, OrderRow | RowError]]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            yield line, RowError(line, f"not JSON: {error.msg}")
            continue
        if not isinstance(values, dict):
            yield line, RowError(line, "not a JSON object")
            continue
        yield line, _validated(line, values)


def _validated(line: int, values: dict[str, object]) -> OrderRow | RowError:
    try:
        return OrderRow.model_validate(values)
    except ValidationError as error:
        return RowError(line, first_error(error))


@dataclass
class ImportSummary:
    imported: int = 0  # new orders
    known: int = 0  # order refs already registered: nothing to do (imports are idempotent)
    failed: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "known": self.known,
            "failed": [{"line": f.line, "error": f.error} for f in self.failed],
        }


def import_orders(
    registry: Registry,
    rows: Iterable[tuple[int, OrderRow | RowError]],
    on_row: Callable[[], None] = lambda: None,
) -> ImportSummary:
    """Register each order in its own transaction: one bad row costs only itself."""
    summary = ImportSummary()
    for line, row in rows:
        if isinstance(row, RowError):
            summary.failed.append(row)
        else:
            try:
                view = registry.import_order(row.seller, row.buyer, row.order_ref, row.placed_at)
            except RegistryError as error:
                summary.failed.append(RowError(line, str(error)))
            else:
                if view.created:
                    summary.imported += 1
                else:
                    summary.known += 1
        on_row()
    return summary
