"""Dynamic batching: concurrent requests share one forward pass, run in a worker thread.

A forward pass over 16 images costs far less than 16 passes over one, and the event loop must stay free
to parse the next requests meanwhile. The batcher takes whatever is queued when the worker becomes free
(up to `max_batch` images), so a lone request never waits for company (`max_wait_s=0`, the default) while
requests that arrive during a forward pass ride together in the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from ..errors import invalid

Job = TypeVar("Job")


class MicroBatcher(Generic[Job]):
    """`await batcher(job)` -> `work([... job ...])[i]`, with concurrent jobs gathered into one `work` call.

    work: runs in the worker thread, takes a list of jobs and returns one result per job, in order; a result
    that is an exception is raised to that job's caller only. size: how many images a job holds.
    """

    def __init__(self, work: Callable[[list[Job]], Sequence[Any]], max_batch: int = 64, max_wait_s: float = 0.0,
                 size: Callable[[Job], int] = lambda job: 1):
        if max_batch < 1:
            raise invalid("max_batch", max_batch, ">= 1")
        self.work = work
        self.size = size
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batches = 0  # worker calls, and images through them: /health reports the mean batch size
        self.images = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, job: Job) -> Any:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._running_queue().put_nowait((job, future))
        return await future

    def _running_queue(self) -> asyncio.Queue:
        # Started lazily inside the serving loop, so the app works with or without a lifespan, and again in a
        # new loop if the app is driven by another one (TestClient without `with` runs a loop per request).
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done() or self._task.get_loop() is not loop:
            if self._executor is None:
                # One thread: forward passes never overlap (torch already spreads one over its own threads).
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgclf-forward")
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue, self._executor), name="imgclf-batcher")
        return self._queue

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _gather(self, queue: asyncio.Queue) -> list[tuple[Job, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        items = [await queue.get()]
        count = self.size(items[0][0])
        deadline = loop.time() + self.max_wait_s
        while count < self.max_batch:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            items.append(item)
            count += self.size(item[0])
        return [(job, f) for job, f in items if not f.done()]  # a client that went away has a cancelled future

    async def _run(self, queue: asyncio.Queue, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather(queue)
            if not items:
                continue
            jobs = [job for job, _ in items]
            try:
                results = await loop.run_in_executor(executor, self.work, jobs)
            except Exception as exc:  # hand the failure to every waiting request; keep serving
                results = [exc] * len(items)
            else:
                if len(results) != len(items):
                    results = [RuntimeError(f"batch work returned {len(results)} results for {len(items)} jobs")] * len(items)
                self.batches += 1
                self.images += sum(self.size(job) for job in jobs)
            for (_, future), result in zip(items, results):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
