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
