"""handlers/batching.py: group commit: batches, order of results, failures, concurrent writers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from handlers.batching import GroupCommitter


class Writer:
    """A batch writer that takes ``delay`` seconds and records what it saw."""

    def __init__(self, delay: float = 0.005, bad: frozenset[int] = frozenset()) -> None:
        self.delay, self.bad = delay, bad
        self.batches: list[list[int]] = []
        self.running = 0
        self.peak = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            if self.bad & set(items):
                raise ValueError("bad item")
            self.batches.append(list(items))
            return [i * 10 for i in items]
        finally:
            self.running -= 1


async def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    writer = Writer()
    committer = GroupCommitter(writer, max_batch=16, linger=0.002)
    results = await asyncio.gather(*(committer.submit(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert sorted(i for b in writer.batches for i in b) == list(range(100))
    assert all(len(b) <= 16 for b in writer.batches)
    assert len(writer.batches) < 20  # batched, not one transaction each
    assert writer.peak == 1  # the default: one transaction at a time


@pytest.mark.parametrize("concurrency", [1, 2, 4])
async def test_at_most_concurrency_writers_and_all_of_them_used(concurrency: int) -> None:
    writer = Writer(delay=0.01)
    committer = GroupCommitter(writer, max_batch=8, linger=0.001, concurrency=concurrency)

    async def trickle(i: int) -> int:
        await asyncio.sleep(i * 0.0002)  # a steady stream, not one burst, more than the writers absorb
        return await committer.submit(i)

    results = await asyncio.gather(*(trickle(i) for i in range(300)))
    assert results == [i * 10 for i in range(300)]
    assert writer.peak == concurrency


async def test_a_second_writer_only_when_a_whole_batch_waits() -> None:
    """A steady stream that one writer absorbs stays in one writer's larger batches."""
    writer = Writer(delay=0.005)
    committer = GroupCommitter(writer, max_batch=64, linger=0.001, concurrency=4)

    async def trickle(i: int) -> int:
        await asyncio.sleep(i * 0.001)  # ~5 arrivals per transaction, far from a batch of 64
        return await committer.submit(i)

    results = await asyncio.gather(*(trickle(i) for i in range(200)))
    assert results == [i * 10 for i in range(200)]
    assert writer.peak == 1
    assert len(writer.batches) < 100  # arrivals during a commit went together in the next one


async def test_one_bad_item_fails_alone() -> None:
    writer = Writer(bad=frozenset({7}))
    committer = GroupCommitter(writer, max_batch=32, linger=0.002, concurrency=2)
    outcomes = await asyncio.gather(*(committer.submit(i) for i in range(20)), return_exceptions=True)
    assert isinstance(outcomes[7], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [i * 10 for i in range(20) if i != 7]


@pytest.mark.parametrize("seed", range(8))
async def test_no_item_is_left_behind_whatever_the_arrival_pattern(seed: int) -> None:
    """Writers end when the queue empties; an item arriving just then must start a new one."""
    rng = random.Random(seed)
    writer = Writer(delay=rng.choice([0.0, 0.001, 0.003]))
    committer = GroupCommitter(writer, max_batch=rng.choice([1, 3, 10]), linger=rng.choice([0.0, 0.001]),
                               concurrency=rng.choice([1, 2, 3]))

    async def arrive(i: int) -> int:
        await asyncio.sleep(rng.choice([0.0, 0.0, rng.uniform(0, 0.02)]))
        return await committer.submit(i)

    results = await asyncio.wait_for(asyncio.gather(*(arrive(i) for i in range(200))), timeout=20)
    assert results == [i * 10 for i in range(200)]
