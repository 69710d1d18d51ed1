"""pg_batch.Batcher on its own: which calls go together, and who hears what."""

from __future__ import annotations

import asyncio

import pytest

from pushq.server.store.pg_batch import Batcher, Outcome


def test_calls_of_one_tick_go_together_and_calls_meanwhile_form_the_next_batch() -> None:
    async def scenario() -> None:
        batches: list[list[int]] = []
        release = asyncio.Event()

        async def run(items: list[int]) -> list[Outcome]:
            batches.append(items)
            await release.wait()  # the batch's commit
            return [(True, item * 10) for item in items]

        batcher: Batcher[int] = Batcher(run)
        first = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        while not batches:
            await asyncio.sleep(0)
        later = [asyncio.create_task(batcher.submit(i)) for i in range(3, 5)]
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(*first, *later) == [0, 10, 20, 30, 40]
        assert batches == [[0, 1, 2], [3, 4]]

    asyncio.run(scenario())


def test_each_call_gets_its_own_answer_or_error() -> None:
    async def scenario() -> None:
        async def run(items: list[int]) -> list[Outcome]:
            return [(False, ValueError(item)) if item == 2 else (True, item) for item in items]

        batcher: Batcher[int] = Batcher(run)
        answers = await asyncio.gather(
            *(batcher.submit(i) for i in range(4)), return_exceptions=True
        )
        assert answers[:2] == [0, 1] and answers[3] == 3
        assert isinstance(answers[2], ValueError)

    asyncio.run(scenario())


def test_a_batch_takes_up_to_its_byte_bound_but_at_least_one_call() -> None:
    async def scenario() -> None:
        batches: list[list[int]] = []

        async def run(items: list[int]) -> list[Outcome]:
            batches.append(items)
            return [(True, None)] * len(items)

        batcher: Batcher[int] = Batcher(run, weight=lambda size: size, max_bytes=10, max_batch=3)
        await asyncio.gather(*(batcher.submit(size) for size in (4, 4, 4, 20, 1, 1, 1, 1)))
        assert batches == [[4, 4], [4], [20], [1, 1, 1], [1]]

    asyncio.run(scenario())


def test_a_run_that_raises_fails_its_batch_and_the_next_batch_still_runs() -> None:
    async def scenario() -> None:
        calls = 0

        async def run(items: list[int]) -> list[Outcome]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("broken")
            return [(True, item) for item in items]

        batcher: Batcher[int] = Batcher(run)
        with pytest.raises(RuntimeError, match="broken"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2

    asyncio.run(scenario())
