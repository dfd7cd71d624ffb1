"""Adaptive batching as a wrapper with the same signature as ``infer``.

Concurrent calls for one model are coalesced into one backend call and split back.
There is no batching thread: the first caller to find the model idle becomes the
leader and runs a batch of whatever is queued (its own request included); callers
arriving meanwhile queue up and are served by the next leader. A call that finds
the model idle and nothing queued runs inline, as if there were no batcher (the
cost of batching at one client is then a lock round trip). With a timeout
above 0 the leader first waits up to that long for more requests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from rps_infer.tensors import Feeds


class _Pending:
    __slots__ = ("done", "error", "feeds", "result", "rows", "signature")

    def __init__(self, feeds: Feeds) -> None:
        self.feeds = feeds
        # Requests can share a batch only if every input matches beyond the batch dim.
        self.signature = [(k, v.dtype, v.shape[1:]) for k, v in feeds.items()]
        self.rows = next(iter(feeds.values())).shape[0]
        self.done = False
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None


class AdaptiveBatcher:
    """Wraps ``infer`` (feeds -> outputs, batch on axis 0 of every tensor).

    Args:
        infer: the function to batch, e.g. a backend's ``infer``.
        max_batch_size: rows per coalesced call at most (a single larger request
            still runs, alone).
        timeout_us: how long a leader waits for more requests (0: take what queued
            while the previous batch ran, adding no wait at low load).
        preferred: batch sizes worth waiting for (Triton's preferred_batch_size): a waiting
            leader stops at the largest one instead of ``max_batch_size``.
        on_batch: called with the row count of every backend call (metrics).
    """

    def __init__(self, infer: Callable[[Feeds], dict[str, np.ndarray]], max_batch_size: int,
                 timeout_us: int = 0, on_batch: Callable[[int], None] | None = None,
                 preferred: tuple[int, ...] = ()) -> None:
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.target = min(max(preferred), max_batch_size) if preferred else max_batch_size
        self.timeout_s = timeout_us / 1e6
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._busy = False

    def infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Same contract as the wrapped ``infer``; blocks until this request's rows are done."""
        if self.timeout_s <= 0:
            with self._cond:
                idle = not self._busy and not self._queue
                self._busy = self._busy or idle
            if idle:  # nothing to coalesce with: run inline, no queue entry, no split
                return self._run_alone(feeds)
        item = _Pending(feeds)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                if self.timeout_s > 0:
                    self._wait_for_more()
                batch = self._take()
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result

    def _run_alone(self, feeds: Feeds) -> dict[str, np.ndarray]:
        try:
            outputs = self._infer(feeds)
            if self._on_batch is not None:
                self._on_batch(next(iter(feeds.values())).shape[0])
            return outputs
        finally:  # callers that queued meanwhile wake up and one of them leads the next batch
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _wait_for_more(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while sum(p.rows for p in self._queue) < self.target:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _take(self) -> list[_Pending]:
        """The oldest request and the following ones that fit its signature and the row limit."""
        first = self._queue.popleft()
        batch, rows, keep = [first], first.rows, deque()
        while self._queue:
            item = self._queue.popleft()
            if item.signature == first.signature and rows + item.rows <= self.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._queue.extendleft(reversed(keep))
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                outputs = self._infer(batch[0].feeds)
                results = [outputs]
            else:
                feeds = {k: np.concatenate([p.feeds[k] for p in batch]) for k in batch[0].feeds}
                outputs = self._infer(feeds)
                splits = np.cumsum([p.rows for p in batch])[:-1]
                parts = {k: np.split(v, splits) for k, v in outputs.items()}
                results = [{k: parts[k][i] for k in parts} for i in range(len(batch))]
            if self._on_batch is not None:
                self._on_batch(sum(p.rows for p in batch))
            for item, result in zip(batch, results, strict=True):
                item.result = result
        except BaseException as exc:  # every waiter of this batch gets the error, the server lives on
            for item in batch:
                item.error = exc
        for item in batch:
            item.done = True
