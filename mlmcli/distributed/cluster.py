"""The dask.distributed client: a running scheduler (--scheduler, DASK_SCHEDULER_ADDRESS) or a local
cluster of one worker process per core; passes over the partitions with a progress bar on a terminal."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlmcli.errors import DataError, MlmError

# the partial sums of this many partitions are added in one task of the tree reduction
FAN_IN = 8


# the protocols distributed's comms speak between machines
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(r"(?:(?P<scheme>[^:/]*)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[^/]*))?/?")
_FORM = "write it as tcp://HOST:PORT or HOST:PORT, e.g. tcp://10.0.0.5:8786"


def check_address(scheduler: str | None) -> str | None:
    """The scheduler's address (--scheduler, else DASK_SCHEDULER_ADDRESS), None for a local cluster; a
    malformed one is an error at once rather than after distributed's own attempts."""
    env = os.environ.get("DASK_SCHEDULER_ADDRESS")
    address = scheduler if scheduler is not None else env
    if not address:
        return None
    what = f"the dask scheduler address {address!r}" + ("" if scheduler is not None else " (DASK_SCHEDULER_ADDRESS)")
    m = _ADDRESS.fullmatch(address.strip())
    if m is None:
        raise MlmError(f"{what} is not an address: {_FORM}")
    scheme, port = m.group("scheme"), m.group("port")
    if scheme is not None and scheme not in _SCHEMES:
        raise MlmError(
            f"{what} has an unknown protocol {scheme + '://'!r} (known: "
            f"{', '.join(s + '://' for s in _SCHEMES)}): {_FORM}"
        )
    if port is None or port == "":
        raise MlmError(f"{what} has no port: {_FORM}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise MlmError(f"{what} has the port {port!r}, not a number from 1 to 65535: {_FORM}")
    return address.strip() if scheme is not None else f"tcp://{address.strip()}"


def _probe(address: str, timeout: float) -> None:
    """Ask the scheduler who it is, giving up after `timeout` seconds: distributed's client waits for
    a server that accepts the connection and never answers without end, whatever its timeout."""
    import asyncio

    from distributed.comm import connect as open_comm

    async def ask() -> None:
        # distributed retries a refused connection until its own timeout and then says so (set shorter
        # than ours, to be the error seen); its handshake and the reply have no end but ours
        comm = await open_comm(address, timeout=0.9 * timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            reply = await comm.read()
        finally:
            comm.abort()
        if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
            raise DataError(f"{address} answered, but is not a dask scheduler")

    seconds = f"{timeout:g} second{'s' if timeout != 1 else ''}"
    try:
        asyncio.run(asyncio.wait_for(ask(), timeout))
    except MlmError:
        raise
    except TimeoutError:
        raise DataError(
            f"the dask scheduler at {address} took the connection but did not answer within {seconds} (--timeout)"
        ) from None
    except (OSError, ValueError) as e:
        if str(e).startswith("Timed out trying to connect"):
            raise DataError(
                f"cannot reach the dask scheduler at {address}: no connection within {seconds} (--timeout)"
            ) from None
        raise DataError(f"cannot reach the dask scheduler at {address}: {_one_line(e)}") from None
    except Exception:  # noqa: BLE001 - bytes that are not dask's protocol (an HTTP server, say)
        raise DataError(f"{address} answered, but not as a dask scheduler does") from None


@contextmanager
def connect(address: str | None, timeout: float = 30.0) -> Iterator[Any]:
    """A client of the scheduler at `address` (from check_address); without one, of a local cluster
    started here and closed afterwards."""
    import logging

    from distributed import Client, LocalCluster

    if address:
        _probe(address, timeout)
        try:
            client = Client(address, set_as_default=False, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise DataError(f"cannot reach the dask scheduler at {address}: {_one_line(e)}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # no dashboard, but the scheduler's HTTP routes still listen: on a free port, not on 8787 with
        # a multi-line warning when another cluster (another mlm) holds that one
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        # a task's error reaches the user once, as one line from the results (_results); the workers'
        # own log of it ("Compute Failed" and its traceback) would print on this terminal too
        silence_logs=logging.CRITICAL,
    )
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


def tree_sum(
    client: Any, tasks: list, combine: Callable, label: str, on_done: Callable[[int], None] | None = None
) -> Any:
    """The per-partition results added by a tree reduction on the cluster (FAN_IN at a time)."""
    futures = client.compute(tasks)
    level = list(futures)
    while len(level) > 1:
        level = [client.submit(combine, *level[i : i + FAN_IN], pure=False) for i in range(0, len(level), FAN_IN)]
    _wait(client, futures, label, on_done)
    del futures
    return _results(client, [level[0]])[0]


def reduce(client: Any, futures: list, combine: Callable) -> Any:
    """The results of futures already on the cluster added by a tree reduction (FAN_IN at a time),
    whose last step, at most FAN_IN partial sums, is the client's: one trip to a worker less."""
    level = list(futures)
    while len(level) > FAN_IN:
        level = [client.submit(combine, *level[i : i + FAN_IN], pure=False) for i in range(0, len(level), FAN_IN)]
    return combine(*_results(client, level))


def _results(client: Any, futures: list) -> list:
    try:
        return client.gather(futures)
    except MlmError:
        raise
    except Exception as e:  # a file that cannot be parsed, a lost cluster: one line, not a traceback
        if "deserializ" in str(e):
            raise DataError(
                "the dask scheduler or a worker cannot load mlm's tasks: install mlm "
                "(pip install 'mlm[dask]') where they run, in the same version as here"
            ) from None
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
