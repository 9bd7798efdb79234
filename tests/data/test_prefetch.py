import threading
import time

import pytest

from qmra.data.prefetch import prefetch


def test_items_come_in_order():
    assert list(prefetch(range(100), depth=3)) == list(range(100))


def test_an_error_while_producing_is_raised_at_its_item():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]


def test_leaving_early_stops_the_thread():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    reader = prefetch(endless(), depth=2)
    assert next(reader) == 0
    reader.close()
    time.sleep(0.2)
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count <= 5
    assert not any(t.name == "qmra-prefetch" and t.is_alive() for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError):
        next(prefetch([1], depth=0))
