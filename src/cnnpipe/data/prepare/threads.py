"""Image decoding in a thread pool, in order and with bounded memory, and its progress bar."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tqdm import tqdm

from cnnpipe.cpus import usable_cpus


def _ordered_map(fn: Callable[..., Any], jobs: Iterable[tuple], workers: int | None) -> Iterator[Any]:
    """``fn(*job)`` in a thread pool, results in job order, with a bounded number in flight.

    ``jobs`` is consumed lazily in the calling thread (that is where archive members are
    read), so memory stays flat however many images there are.
    """
    workers = workers or usable_cpus()
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(fn, *job))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _progress(total: int, name: str) -> tqdm:
    # disable=None: a bar on a terminal, no carriage-return noise in logs.
    return tqdm(total=total, desc=name, unit="img", disable=None)
