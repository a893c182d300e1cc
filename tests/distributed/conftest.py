"""Worker groups shared by the distributed tests: started once per session, always stopped.

Every collective in them has a timeout (the process group's, 30 s); every task a deadline.
"""

from __future__ import annotations

import pytest

from attnkit.distributed.launch import WorkerGroup

TIMEOUT = 30.0


@pytest.fixture(scope="session")
def group2():
    with WorkerGroup(2, timeout=TIMEOUT) as group:
        yield group


@pytest.fixture(scope="session")
def group4():
    with WorkerGroup(4, timeout=TIMEOUT) as group:
        yield group


@pytest.fixture(scope="module")
def world1():
    """A one-rank gloo process group in this (the test) process, for the functions that need one;
    destroyed at the end of the module (other modules test the errors without a group)."""
    import datetime
    import os
    import tempfile

    import torch.distributed as dist

    folder = tempfile.mkdtemp(prefix="attnkit-pg1-")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'store')}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=TIMEOUT))
    try:
        yield None
    finally:
        dist.destroy_process_group()


def on_ranks(group, fn: str, per_rank: list, timeout: float = 10.0) -> list:
    """``fn`` (a name in ``attnkit.distributed.demo.RANK_FUNCTIONS``) on every rank of ``group`` with that
    rank's ``(args, kwargs)``; a rank left waiting for another fails the test within ``timeout`` seconds."""
    from attnkit.distributed.demo import call_on_ranks

    return group.run(call_on_ranks, fn, per_rank, timeout=timeout)
