"""The dask.distributed client: a running scheduler (--scheduler, DASK_SCHEDULER_ADDRESS) or a local
cluster of one worker process per core; passes over the partitions with a progress bar on a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlmcli.errors import DataError, MlmError

# the partial sums of this many partitions are added in one task of the tree reduction
FAN_IN = 8


@contextmanager
def connect(scheduler: str | None) -> Iterator[Any]:
    """A client of the scheduler at `scheduler` (or DASK_SCHEDULER_ADDRESS); without one, of a local
    cluster started here and closed afterwards."""
    import logging

    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:
            client = Client(address, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise DataError(f"cannot reach the dask scheduler at {address}: {_one_line(e)}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def run(client: Any, tasks: list, label: str, on_done: Callable[[int], None] | None = None) -> list:
    """Compute one delayed task per partition; their results in partition order."""
    futures = client.compute(tasks)
    _wait(client, futures, label, on_done)
    return _results(client, futures)


def tree_sum(client: Any, tasks: list, combine: Callable, label: str,
             on_done: Callable[[int], None] | None = None) -> Any:
    """The per-partition results added by a tree reduction on the cluster (FAN_IN at a time)."""
    futures = client.compute(tasks)
    level = list(futures)
    while len(level) > 1:
        level = [client.submit(combine, *level[i:i + FAN_IN], pure=False) for i in range(0, len(level), FAN_IN)]
    _wait(client, futures, label, on_done)
    del futures
    return _results(client, [level[0]])[0]


def _results(client: Any, futures: list) -> list:
    try:
        return client.gather(futures)
    except MlmError:
        raise
    except Exception as e:  # a file that cannot be parsed, a lost cluster: one line, not a traceback
        if "deserializ" in str(e):
            raise DataError("the dask scheduler or a worker cannot load mlm's tasks: install mlm "
                            "(pip install 'mlm[dask]') where they run, in the same version as here") from None
        raise DataError(f"the pass over the data failed: {_one_line(e)}") from None


def _wait(client: Any, futures: list, label: str, on_done: Callable[[int], None] | None) -> None:
    """Follow the partitions as they finish: a progress bar on a terminal, the callback each time."""
    from distributed import as_completed

    bar = None
    if sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True, console=_stderr_console())
        bar.start()
        task = bar.add_task(label, total=len(futures))
    try:
        for done, _ in enumerate(as_completed(futures, loop=client.loop), start=1):
            if bar is not None:
                bar.update(task, completed=done)
            if on_done is not None:
                on_done(done)
    finally:
        if bar is not None:
            bar.stop()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
