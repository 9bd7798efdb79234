"""Put on PYTHONPATH by the tests that stop a run midway: with QMRA_TEST_FRAME_DELAY=SECONDS, every
Python process (workers and Ray actors included) waits that long before writing each frame, so that
a signal or a kill lands in the middle of a video however fast the machine is."""

import os

_DELAY = float(os.environ.get("QMRA_TEST_FRAME_DELAY", "0") or 0)
if _DELAY > 0:
    import time

    from qmra.inference import outputs

    _write = outputs.ResultWriter.write

    def _slow_write(self, result):
        time.sleep(_DELAY)
        _write(self, result)

    outputs.ResultWriter.write = _slow_write
