"""How many local workers, and how many threads each."""

from __future__ import annotations

from qmra.batch.local_pool import WORKER_MEMORY, cpu_workers, split_threads


def test_cpu_workers_are_one_per_core_as_memory_allows():
    assert cpu_workers(8, None) == 8 and cpu_workers(8, int(3.5 * WORKER_MEMORY)) == 3 and cpu_workers(4, 0) == 1
    assert split_threads(2, 2) == 1 and split_threads(16, 3) == 5 and split_threads(2, 8) == 1
