"""Start or join a ``dask.distributed`` cluster, and the per-worker model cache.

``--cluster local`` / ``local:N`` starts a :class:`distributed.LocalCluster`
of N single-threaded worker processes on this machine; an address
(``tcp://host:8786``) joins a scheduler that is already running (started by
hand, by dask-jobqueue on SLURM/PBS, or on Kubernetes). Each worker keeps the
models it loaded on its :class:`distributed.Worker` object, so a model is
loaded once per worker, not once per task.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError
from ..predict.api import Segmenter, load_model

#: Attribute of a dask worker that holds its loaded models (``(model, device) -> Segmenter``).
WORKER_CACHE = "lociseg_models"


def parse_cluster(spec: str) -> tuple[str, int | None]:
    """``("local", N or None)`` for ``local[:N]``, ``("address", None)`` for a scheduler address.

    Raises
    ------
    ConfigError
        Anything else (a bad worker count, an empty string).
    """
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        n = spec.partition(":")[2]
        if n and not (n.isdigit() and int(n) >= 1):
            raise ConfigError(f"--cluster local:N needs a positive number of workers, got {spec!r}")
        return "local", int(n) if n else None
    if "://" in spec or (":" in spec and spec.rsplit(":", 1)[1].isdigit()):
        return "address", None
    raise ConfigError(f"--cluster must be local, local:N or a scheduler address (tcp://host:8786), got {spec!r}")


@contextlib.contextmanager
def connect(spec: str, *, threads: int | None = None) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``spec`` (see :func:`parse_cluster`); a local cluster is closed on exit.

    Parameters
    ----------
    spec : str
        ``local``, ``local:N`` or a scheduler address.
    threads : int, optional
        Torch threads per local worker (default: this machine's cores / N).
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ConfigError("--cluster needs dask.distributed: pip install 'lociseg[dask]'") from None
    kind, n = parse_cluster(spec)
    # the scheduler and nannies of a local cluster log their start and stop at INFO; a lost worker is a WARNING
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if kind == "address":
        with Client(spec) as client:
            yield client
        return
    n = n or max(1, (os.cpu_count() or 1))
    threads = threads or max(1, (os.cpu_count() or 1) // n)
    # one task at a time per worker process: a segmentation uses all of its torch threads
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # dask's nanny sets MALLOC_TRIM_THRESHOLD_ for its workers; a fixed threshold turns off glibc's adaptive
    # mmap threshold, so every large array is mapped and faulted in anew: 1.7x the CPU per field (BENCHMARKS.md)
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=env,
            silence_logs=logging.ERROR,  # a worker lost and replaced is still reported (as an error)
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def cached_segmenter(model: str, device: str = "auto") -> Segmenter:
    """The worker's :class:`~lociseg.predict.Segmenter` for ``model``, loaded on its first task.

    Outside a dask worker (a plain call) the model is loaded afresh.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ModuleNotFoundError, ValueError):
        return load_model(model, device=device)
    cache = getattr(worker, WORKER_CACHE, None)
    if cache is None:
        cache = {}
        setattr(worker, WORKER_CACHE, cache)
    key = (str(model), str(device))
    if key not in cache:
        cache[key] = load_model(model, device=device)
    return cache[key]


def loads_on_worker(dask_worker: Any = None) -> int:
    """How many models a worker has loaded and keeps (``client.run(loads_on_worker)`` passes each worker)."""
    if dask_worker is None:
        from distributed import get_worker

        dask_worker = get_worker()
    return len(getattr(dask_worker, WORKER_CACHE, {}) or {})


def release_memory() -> None:
    """Give memory that a finished task freed back to the system (glibc ``malloc_trim``; elsewhere nothing).

    Local workers run without dask's ``MALLOC_TRIM_THRESHOLD_`` (see
    :func:`connect`), so glibc would otherwise keep the freed arrays of
    every task and a worker's RSS would grow with the number of its tasks.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
