"""Adaptive batching: concurrent requests for one model merged into one call of its compiled function.

One worker thread per model takes the oldest request, adds the ones that queued behind it while the model was
busy (up to `max_batch` rows, waiting at most `timeout` seconds for more: TF Serving's max_batch_size and
batch_timeout_micros), runs the model once and hands each request its rows. Under light load a request runs at
once; under heavy load batches grow, so throughput rises with load. The queue is bounded in rows: a request that
does not fit is refused at once (503 + Retry-After) instead of waiting without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kcli.serve.model import ServedModel


class Overloaded(Exception):
    """The queue is full: answered 503 with Retry-After."""


@dataclass
class _Job:
    model: ServedModel
    x: Any
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    loop: asyncio.AbstractEventLoop


class Batcher:
    """The request queue and worker thread of one served model."""

    def __init__(self, max_batch: int, timeout: float, max_queue_rows: int,
                 observe: Callable[[int, int], None] = lambda rows, queued: None) -> None:
        self.max_batch, self.timeout, self.max_queue_rows = max_batch, timeout, max_queue_rows
        self._observe = observe   # (batch rows, rows still queued) after each model call, for /metrics
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._queued = 0
        self._lock = threading.Lock()
        self._held: _Job | None = None   # a job taken that did not fit the last batch: it starts the next
        self._thread = threading.Thread(target=self._work, name="kcli-batcher", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        """Rows waiting or running."""
        return self._queued

    def submit(self, model: ServedModel, x: Any, rows: int) -> asyncio.Future[dict[str, np.ndarray]]:
        """Queue a prepared request; its future gets the request's rows of every output."""
        with self._lock:
            if self._queued + rows > self.max_queue_rows:
                raise Overloaded()
            self._queued += rows
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, np.ndarray]] = loop.create_future()
        self._queue.put(_Job(model, x, rows, future, loop))
        return future

    def stop(self) -> None:
        """Finish the queued requests, then end the worker."""
        self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._run(jobs)

    def _next_batch(self) -> list[_Job] | None:
        """The oldest job and those that fit behind it, waiting up to `timeout` for more rows."""
        first = self._held or self._queue.get()
        self._held = None
        if first is None:
            return None
        jobs, rows = [first], first.rows
        deadline = time.monotonic() + self.timeout
        while rows < self.max_batch:
            try:
                wait = deadline - time.monotonic()
                job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None or job.model is not first.model or rows + job.rows > self.max_batch:
                self._held = job if job is not None else None
                if job is None:
                    self._queue.put(None)   # stop after this batch
                break
            jobs.append(job)
            rows += job.rows
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        """One model call for the batch (a failing batch is retried request by request)."""
        rows = sum(j.rows for j in jobs)
        try:
            answers: dict[str, np.ndarray] | BaseException = _call(jobs[0].model, [j.x for j in jobs])
        except Exception as exc:  # a request the model fails on: find it, answer the others
            answers = exc
        if isinstance(answers, BaseException) and len(jobs) > 1:
            for job in jobs:
                self._run([job])
            return
        start = 0
        for job in jobs:
            if isinstance(answers, BaseException):
                result: Any = answers
            else:
                result = {k: v[start:start + job.rows] for k, v in answers.items()}
            start += job.rows
            job.loop.call_soon_threadsafe(_settle, job.future, result)
        with self._lock:
            self._queued -= rows
            left = self._queued
        self._observe(rows, left)


def _call(model: ServedModel, parts: list[Any]) -> dict[str, np.ndarray]:
    """The model's answers on the parts' rows side by side."""
    if isinstance(parts[0], dict):
        x: Any = {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]}
    else:
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return model.answers(model.predict(x))


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():   # the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
