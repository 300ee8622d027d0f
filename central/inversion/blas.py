"""Running many medium-sized matrix products in parallel threads, one BLAS thread each.

The spatial Gram matrix is built from about a hundred products of a few tens of MFLOP each. With
OpenBLAS's own threads every product synchronises its threads, and when the machine is busy with
other work a thread that waits for a descheduled partner spins: the products then take several
times longer than on one thread. Splitting the products over Python threads (numpy releases the
GIL inside them), each running single-threaded BLAS, keeps both cores busy without that
synchronisation. The thread count of the OpenBLAS libraries loaded in the process (numpy's and
scipy's wheels each bundle one) is set through their C API, as threadpoolctl does, and restored
afterwards; where no OpenBLAS is found the work runs in the calling thread with BLAS as it is.

The solver runs everything but its large LAPACK and triangular-solve calls (the m x m factorisation,
triangular inverse and the per-cell L^-1 products, `parallel_blas_when_idle`: threaded only while the
load average leaves cores free) with one BLAS thread: its other products are small (row grouping,
aggregates, vectors), OpenBLAS's threads cost more on them than they save, and a worker thread
keeps spinning for a while after each threaded call, taking a core from what runs next.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import lru_cache

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
            "openblas_get_num_threads")


@lru_cache(maxsize=1)
def _libraries() -> tuple[tuple[Callable[[int], None], Callable[[], int], int], ...]:
    """(set, get, thread count when first seen) of every OpenBLAS library mapped into this process."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return ()
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            found.append((setter, getter, getter()))
    return tuple(found)


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def _blas_threads(counts: Callable[[int], int]) -> Iterator[bool]:
    """Set every loaded OpenBLAS to counts(its first-seen count) threads inside the block, restoring
    what it had; yields whether any OpenBLAS was found."""
    libs = _libraries()
    before = [get() for _, get, _ in libs]
    for set_, _, default in libs:
        set_(counts(default))
    try:
        yield bool(libs)
    finally:
        for (set_, _, _), n in zip(libs, before):
            set_(n)


def single_threaded_blas():
    """Set every loaded OpenBLAS to one thread inside the block; yields whether that was possible."""
    return _blas_threads(lambda default: 1)


def parallel_blas():
    """Give every loaded OpenBLAS back the thread count it had when first seen (its configured
    default, e.g. OPENBLAS_NUM_THREADS or all cores) inside the block, also inside
    `single_threaded_blas`: for the large LAPACK calls."""
    return _blas_threads(lambda default: default)


def spare_cores(load: float, cores: int) -> bool:
    """Whether BLAS threads would find cores free: the 1-minute load average (this process's running
    thread included) below the core count. On a busy machine a threaded factorisation ran 2-4x
    slower than on one thread (m = 3,000, load 5 on 2 cores): its threads wait for descheduled
    partners by spinning (tests/benchmarks/README.md)."""
    return load < cores


def parallel_blas_when_idle():
    """`parallel_blas` when the machine has cores to spare (`spare_cores`), else BLAS as it is (one
    thread inside `single_threaded_blas`): for the large LAPACK and triangular-solve calls."""
    return parallel_blas() if spare_cores(os.getloadavg()[0], cores()) else nullcontext(False)


def run_parallel(tasks: Iterable[Callable[[], None]], done: Callable[[int], None] | None = None) -> None:
    """Run independent tasks (each a few matrix products) on all cores, single-threaded BLAS each.

    Tasks are handed out in the order given, as threads become free: put the largest first.
    `done(i)` is called in the calling thread once tasks 0..i have finished.
    """
    tasks = list(tasks)
    with single_threaded_blas() as controlled:
        workers = min(cores(), len(tasks)) if controlled else 1
        if workers <= 1:
            for i, task in enumerate(tasks):
                task()
                if done:
                    done(i)
            return
        with ThreadPoolExecutor(workers) as pool:
            for i, future in enumerate([pool.submit(task) for task in tasks]):
                future.result()
                if done:
                    done(i)
