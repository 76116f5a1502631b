"""The DATA spool and the budget of bytes taken in at once: pure asyncio, no sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.smtp.spool import ByteBudget, Spool


def test_a_spool_keeps_small_texts_in_memory_and_large_ones_on_disk(tmp_path: Path) -> None:
    small, large = Spool(tmp_path, in_memory=10), Spool(tmp_path, in_memory=10)
    small.write(b"0123456789")
    for _ in range(3):
        large.write(b"0123456789")
    assert not small.on_disk and large.on_disk
    assert small.read() == b"0123456789" and large.read() == b"0123456789" * 3
    assert large.size == 30
    assert list(tmp_path.iterdir()) == []  # the file has no name: a crash leaves nothing
    small.close()
    large.close()


async def test_the_budget_lets_in_what_fits_and_a_large_message_alone() -> None:
    budget = ByteBudget(10)
    order: list[str] = []
    release_first = asyncio.Event()

    async def take(name: str, size: int, hold: asyncio.Event | None = None) -> None:
        async with budget.hold(size):
            order.append(f"{name} in")
            if hold is not None:
                await hold.wait()
        order.append(f"{name} out")

    first = asyncio.create_task(take("a", 6, release_first))
    await asyncio.sleep(0)
    second = asyncio.create_task(take("b", 6))  # 12 > 10: waits for a
    large = asyncio.create_task(take("c", 50))  # more than the budget: waits to be alone
    await asyncio.sleep(0.01)
    assert order == ["a in"] and budget.waiting == 2
    release_first.set()
    await asyncio.gather(first, second, large)
    assert order[:2] == ["a in", "a out"]
    assert sorted(order[2:]) == ["b in", "b out", "c in", "c out"]
    # b and c never overlapped: c is let in only when nothing else is held.
    b_in, b_out, c_in, c_out = (order.index(x) for x in ("b in", "b out", "c in", "c out"))
    assert b_out < c_in or c_out < b_in
