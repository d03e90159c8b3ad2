"""The micro-batcher: requests queued during a worker call share the next one; failures reach only their callers."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from imgclf.serve.batcher import MicroBatcher


def _rows(first: int, n: int) -> np.ndarray:
    return np.arange(first, first + n, dtype=np.float32).reshape(n, 1)


def test_requests_that_wait_share_one_worker_call():
    started, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def work(jobs: list[np.ndarray]) -> list[np.ndarray]:
        calls.append([len(j) for j in jobs])
        started.set()
        release.wait(timeout=30)
        return [j * 10 for j in jobs]

    async def scenario():
        batcher = MicroBatcher(work, max_batch=64, size=len)
        first = asyncio.create_task(batcher(_rows(0, 1)))
        await asyncio.to_thread(started.wait, 30)  # the first call is now busy in the worker thread
        rest = [asyncio.create_task(batcher(_rows(100 * i, i))) for i in range(1, 6)]
        await asyncio.sleep(0)  # let them queue
        release.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results, batcher

    results, batcher = asyncio.run(scenario())
    assert calls == [[1], [1, 2, 3, 4, 5]]  # the five waiting requests rode together
    for i, out in enumerate(results):  # and each got exactly its own result back
        np.testing.assert_array_equal(out, (_rows(0, 1) if i == 0 else _rows(100 * i, i)) * 10)
    assert (batcher.batches, batcher.images) == (2, 16)


def test_max_batch_bounds_the_images_per_call():
    release = threading.Event()
    calls: list[int] = []

    def work(jobs):
        calls.append(sum(len(j) for j in jobs))
        release.wait(timeout=30)
        return jobs

    async def scenario():
        batcher = MicroBatcher(work, max_batch=4, size=len)
        tasks = [asyncio.create_task(batcher(_rows(i, 1))) for i in range(10)]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)
        await batcher.close()

    asyncio.run(scenario())
    assert sum(calls) == 10 and max(calls) <= 4 and len(calls) >= 3


def test_failures_reach_only_their_callers_and_the_batcher_carries_on():
    def work(jobs):
        if any(j == "crash" for j in jobs):
            raise RuntimeError("boom")
        return [ValueError(f"bad {j}") if j.startswith("bad") else j.upper() for j in jobs]

    async def scenario():
        batcher = MicroBatcher(work)
        good, bad = await asyncio.gather(batcher("ok"), batcher("bad1"), return_exceptions=True)
        crashed = await asyncio.gather(batcher("crash"), return_exceptions=True)
        after = await batcher("again")
        await batcher.close()
        return good, bad, crashed[0], after

    good, bad, crashed, after = asyncio.run(scenario())
    assert good == "OK" and isinstance(bad, ValueError) and str(bad) == "bad bad1"
    assert isinstance(crashed, RuntimeError) and after == "AGAIN"


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        MicroBatcher(lambda jobs: jobs, max_batch=0)
