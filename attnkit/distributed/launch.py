"""Run a function on every rank of a gloo process group of worker processes on this machine.

>>> from attnkit.distributed.launch import WorkerGroup
>>> with WorkerGroup(4) as group:            # 4 processes, one gloo process group
...     results = group.run(my_function, x)  # my_function(x) on each rank, in order

The function must be importable by the workers (defined in a module, not in a notebook cell):
the workers are *spawned* (a fresh interpreter each) and receive it by reference. Each worker
initialises ``torch.distributed`` with the gloo backend, a file store in a private temporary
folder (no TCP port to pick, so two runs on one machine cannot collide) and a timeout that
bounds every collective, then waits for tasks. A task that raises on some rank is reported
as a :class:`WorkerError` naming every failing rank; a task that does not finish within its
timeout, or a worker that dies, stops the whole group. The workers are always stopped
(terminated, then killed) when the group closes, when the ``with`` block exits for any
reason, and at interpreter exit.

On GPUs the same rank functions run under ``torchrun`` with NCCL instead
(:mod:`attnkit.distributed.demo` shows how); this module is for one CPU machine.
"""

from __future__ import annotations

import atexit
import datetime
import os
import pickle
import queue
import shutil
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp

from attnkit._checks import check_int, check_positive

__all__ = ["WorkerError", "WorkerGroup", "spawn"]


class WorkerError(RuntimeError):
    """A task raised on one or more ranks. ``errors``: rank -> ``(exception type name, message, traceback)``."""

    def __init__(self, errors: dict[int, tuple[str, str, str]], world_size: int) -> None:
        self.errors = dict(sorted(errors.items()))
        lines = [f"rank {r}: {kind}: {msg}" for r, (kind, msg, _) in self.errors.items()]
        super().__init__(f"the task failed on {len(errors)} of {world_size} ranks:\n  " + "\n  ".join(lines))


def _worker(rank: int, world_size: int, store: str, timeout_s: float, threads: int, inbox, outbox,
            parent: int) -> None:
    """The body of one worker process: join the group, then run tasks until told to stop."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: loopback only
    def report(task_id: int, ok: bool, value: object) -> None:
        try:  # plain pickle: tensors travel by value, not through shared memory
            outbox.put(pickle.dumps((task_id, rank, ok, value)))
        except Exception as err:  # an unpicklable result is reported as a failure of the task
            outbox.put(pickle.dumps((task_id, rank, False, (type(err).__name__, f"cannot send the result: {err}",
                                                            traceback.format_exc()))))

    def failure(err: BaseException) -> tuple[str, str, str]:
        return type(err).__name__, str(err), traceback.format_exc()

    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as err:  # report a failed start instead of leaving the parent waiting
        report(-1, False, failure(err))
        return
    report(-1, True, None)
    try:
        while True:
            try:
                task = inbox.get(timeout=1.0)
            except queue.Empty:
                if not _alive(parent):  # the parent is gone: do not linger
                    return
                continue
            if task is None:
                return
            try:
                task_id, fn, args, kwargs = pickle.loads(task)
            except Exception as err:
                report(-2, False, failure(err))
                continue
            try:
                report(task_id, True, fn(*args, **kwargs))
            except BaseException as err:  # every failure, even KeyboardInterrupt, is reported to the parent
                report(task_id, False, failure(err))
    finally:
        dist.destroy_process_group()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _context():
    """Fork server where the OS has one (workers start as forks of a process that imported torch once)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # torch and attnkit, imported once (attnkit's checks avoid torch.broadcast_shapes, whose first call
        # imports sympy: the rank functions need no symbolic_shapes)
        preload = ["attnkit.distributed.ring", "attnkit.distributed.demo"]
        main = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None)
        # a module run with ``python -m`` is re-run in each worker as __mp_main__: do not preload it too
        ctx.set_forkserver_preload([m for m in preload if m != main])
        return ctx
    return mp.get_context("spawn")


def _stop(procs: list, inboxes: list, folder: str, grace: list[float]) -> None:
    """Ask the workers to stop, then terminate and kill the stragglers; remove the store's folder."""
    for box in inboxes:
        try:
            box.put(None)
        except (OSError, ValueError):
            pass
    procs = [p for p in procs if p.pid is not None]  # started ones only
    deadline = time.monotonic() + grace[0]
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=2.0)
    shutil.rmtree(folder, ignore_errors=True)


class WorkerGroup:
    """``world_size`` spawned worker processes forming one gloo process group; a context manager.

    Args:
        world_size: number of ranks (processes).
        timeout: seconds: the process group's timeout (bounds every collective and the
            start-up) and the default time a task may take.
        threads: torch threads per worker (1 keeps ``world_size`` workers from oversubscribing
            a small machine).
    """

    def __init__(self, world_size: int, *, timeout: float = 60.0, threads: int = 1) -> None:
        check_int("world_size", world_size, minimum=1)
        check_positive("timeout", timeout)
        check_int("threads", threads, minimum=1)
        self.world_size, self.timeout = world_size, float(timeout)
        ctx = _context()
        self._folder = tempfile.mkdtemp(prefix="attnkit-pg-")
        self._outbox = ctx.Queue()
        self._inboxes = [ctx.Queue() for _ in range(world_size)]
        self._procs = [ctx.Process(target=_worker, daemon=True,
                                   args=(r, world_size, os.path.join(self._folder, "store"), self.timeout,
                                         threads, self._inboxes[r], self._outbox, os.getpid()))
                       for r in range(world_size)]
        self._next_id = 0
        self._closed = False
        self._grace = [3.0]  # seconds the workers get to leave on their own; none after a failure
        self._finalizer = weakref.finalize(self, _stop, self._procs, self._inboxes, self._folder, self._grace)
        atexit.register(self._finalizer)
        try:
            for p in self._procs:
                p.start()
            self._collect(-1, self.timeout + 30.0)  # every rank joined the group
        except BaseException:
            self.close()
            raise

    def _collect(self, task_id: int, timeout: float) -> list[Any]:
        results: dict[int, Any] = {}
        errors: dict[int, tuple[str, str, str]] = {}
        deadline = time.monotonic() + timeout
        while len(results) + len(errors) < self.world_size:
            try:
                tid, rank, ok, value = pickle.loads(self._outbox.get(timeout=0.2))
            except queue.Empty:
                dead = [r for r, p in enumerate(self._procs) if not p.is_alive() and r not in results
                        and r not in errors]
                if dead:
                    self.close(grace=0.0)
                    codes = ", ".join(f"rank {r}: exit code {self._procs[r].exitcode}" for r in dead)
                    raise WorkerError({r: ("ProcessDied", f"worker process exited ({codes})", "")
                                       for r in dead}, self.world_size) from None
                if time.monotonic() > deadline:
                    self.close(grace=0.0)
                    waiting = sorted(set(range(self.world_size)) - set(results) - set(errors))
                    raise TimeoutError(f"ranks {waiting} did not finish within {timeout:.0f} s; "
                                       "the worker group was stopped") from None
                continue
            if tid == -2:  # the task could not be unpickled on that rank
                tid = task_id
            elif tid != task_id:
                continue  # a late answer to an earlier, failed task
            if ok:
                results[rank] = value
            else:
                errors[rank] = value
        if errors:
            if task_id == -1:
                self.close()
            raise WorkerError(errors, self.world_size)
        return [results[r] for r in range(self.world_size)]

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> list[Any]:
        """``fn(*args, **kwargs)`` on every rank; returns the results in rank order.

        Raises:
            WorkerError: ``fn`` raised on some rank (all ranks' errors are collected first).
            TimeoutError: some rank did not finish within ``timeout`` (default: the group's).
            RuntimeError: the group is closed.
        """
        if self._closed:
            raise RuntimeError("this WorkerGroup is closed; start a new one")
        if not callable(fn):
            raise TypeError(f"fn must be a callable; got {type(fn).__name__}")
        if getattr(fn, "__module__", None) == "__main__" and not hasattr(sys.modules["__main__"], "__file__"):
            raise ValueError(f"{fn.__name__} is defined in a notebook or console; the spawned workers cannot "
                             "import it: put it in a module (e.g. attnkit.distributed.demo) and import it")
        task_id, self._next_id = self._next_id, self._next_id + 1
        try:
            payload = pickle.dumps((task_id, fn, args, kwargs))
        except Exception as err:
            raise TypeError(f"the task cannot be sent to the workers (it must pickle): {err}") from None
        for box in self._inboxes:
            box.put(payload)
        return self._collect(task_id, self.timeout if timeout is None else timeout)

    def close(self, grace: float = 3.0) -> None:
        """Stop the workers (idempotent): ``grace`` seconds to finish, then terminate, then kill."""
        if not self._closed:
            self._closed = True
            self._grace[0] = grace
            self._finalizer()
            atexit.unregister(self._finalizer)

    @property
    def alive(self) -> list[bool]:
        """Whether each worker process is still running."""
        return [p.is_alive() for p in self._procs]

    @property
    def pids(self) -> list[int | None]:
        return [p.pid for p in self._procs]

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0, **kwargs: Any) -> list[Any]:
    """Start a :class:`WorkerGroup`, run ``fn(*args, **kwargs)`` on every rank once, stop it; the results."""
    with WorkerGroup(world_size, timeout=timeout) as group:
        return group.run(fn, *args, **kwargs)
