"""HDR video shown as SDR, as players show it on an ordinary screen.

Phones film HDR by default (an iPhone: HEVC, 10 bits, HLG in BT.2020 primaries; many Android phones,
drones and action cameras: PQ, "HDR10"). Converted to RGB as it is stored, such a frame looks flat
and pale: its signal is meant for another transfer curve and a wider gamut. Players tone-map it;
so does qmra, before the network, the overlay or ``qmra ui`` see it: the signal to linear light
(HLG's inverse OETF, scene light; PQ's EOTF, in nits), BT.2020 to BT.709 primaries, reference white
to SDR white (BT.2408: 75 % of the HLG signal, 203 nits in PQ), brighter light rolled off below
white keeping each pixel's hue, and the sRGB curve. Other videos are converted as they always were.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

#: FFmpeg's transfer characteristics (AVColorTransferCharacteristic) of the HDR formats read here.
TRANSFER_PQ = 16  # SMPTE ST 2084
TRANSFER_HLG = 18  # ARIB STD-B67
HDR_TRANSFERS = {TRANSFER_PQ: "PQ", TRANSFER_HLG: "HLG"}

#: Linear BT.2020 RGB → linear BT.709 RGB (ITU-R BT.2087); colours outside BT.709 come out negative
#: and are clipped.
BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                            [-0.1246, 1.1329, -0.0083],
                            [-0.0182, -0.1006, 1.1187]], np.float32)

#: Reference white (BT.2408): HLG's 75 % signal is scene light 0.2649; PQ's is 203 nits.
HLG_WHITE = 0.2649
PQ_WHITE_NITS = 203.0

#: Linear SDR light above this share of white is compressed into what is left below white.
KNEE = 0.75
SRGB_STEPS = 16384
#: Pixels converted at once (a 4K frame on one core: 200 ms in bands of this size, 270 ms whole), and
#: the most threads a frame's bands are shared among.
CHUNK_PIXELS = 1 << 18
MAX_THREADS = 4

#: ARIB STD-B67's constants a, b, c, and SMPTE ST 2084's constants m1, m2, c1, c2, c3.
_HLG = (0.17883277, 0.28466892, 0.55991073)
_PQ = (2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32)


def hdr_transfer(frame) -> str | None:
    """"HLG" or "PQ" where a decoded PyAV video frame (or a stream's codec context) is HDR, else None."""
    transfer = getattr(frame, "color_trc", None)  # PyAV before color_trc: read as stored
    return HDR_TRANSFERS.get(int(transfer)) if transfer is not None else None


def sdr_rgb(frame, width: int | None = None) -> np.ndarray:
    """A decoded PyAV video frame → H×W×3 uint8 RGB as an SDR screen shows it: HDR tone-mapped (see
    the module), any other frame converted by FFmpeg as stored; scaled to ``width`` where given
    (in the same pass)."""
    transfer = hdr_transfer(frame)
    if transfer is None:
        return frame.to_ndarray(format="rgb24", width=width)
    signal = frame.to_ndarray(format="rgb48le", width=width)  # the YUV matrix and range applied by FFmpeg
    to_linear, rgb = _signal_to_linear(transfer), np.empty(signal.shape, np.uint8)
    # Bands small enough for the CPU's cache, on several threads (NumPy lets go of the GIL): a 4K frame
    # took 200 ms on one of this machine's 2 cores, 130 ms on both.
    rows = max(1, CHUNK_PIXELS // signal.shape[1])
    tops = range(0, signal.shape[0], rows)

    def convert(top: int) -> None:
        rgb[top:top + rows] = sdr_from_linear(to_linear[signal[top:top + rows]] @ BT2020_TO_BT709.T)

    workers = min(len(tops), MAX_THREADS, os.cpu_count() or 1)
    if workers == 1:
        for top in tops:
            convert(top)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="qmra-hdr") as pool:
            list(pool.map(convert, tops))
    return rgb


def sdr_from_linear(linear: np.ndarray) -> np.ndarray:
    """H×W×3 float32 linear BT.709 light, 1 = SDR white (overwritten) → H×W×3 uint8 sRGB; light
    above :data:`KNEE` rolled off towards white along each pixel's own hue (its channels scaled alike)."""
    peak = np.maximum(np.maximum(linear[..., 0], linear[..., 1]), linear[..., 2])
    bright = peak > KNEE
    if bright.any():  # a few pixels of most frames: only they are computed
        over = peak[bright]
        rolled = KNEE + (1 - KNEE) * -np.expm1((KNEE - over) / (1 - KNEE))  # slope 1 at the knee
        linear[bright] *= (rolled / over)[:, None]
    np.clip(linear, 0, 1, out=linear)
    linear *= SRGB_STEPS - 1
    linear += 0.5
    return _srgb_encoded()[linear.astype(np.uint16)]


@cache
def _signal_to_linear(transfer: str) -> np.ndarray:
    """65,536 float32: a 16-bit HDR signal value → linear light, 1 = SDR white."""
    signal = np.arange(65536, dtype=np.float64) / 65535
    if transfer == "HLG":
        a, b, c = _HLG
        scene = np.where(signal <= 0.5, signal**2 / 3, (np.exp((signal - c) / a) + b) / 12)
        return (scene / HLG_WHITE).astype(np.float32)
    m1, m2, c1, c2, c3 = _PQ
    power = signal ** (1 / m2)
    nits = 10000 * (np.maximum(power - c1, 0) / (c2 - c3 * power)) ** (1 / m1)
    return (nits / PQ_WHITE_NITS).astype(np.float32)


@cache
def _srgb_encoded() -> np.ndarray:
    """:data:`SRGB_STEPS` uint8: linear light in [0, 1] (evenly stepped) → the sRGB value."""
    linear = np.linspace(0, 1, SRGB_STEPS)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(encoded * 255), 0, 255).astype(np.uint8)


def hdr_signal(srgb: np.ndarray, transfer: str) -> np.ndarray:
    """The inverse of the conversion below the knee: H×W×3 sRGB values in [0, 1] → the HLG or PQ
    BT.2020 signal in [0, 1] that a camera records for that scene, with the module's reference
    white (how tests and benchmarks make HDR frames with known SDR looks)."""
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4) @ np.linalg.inv(BT2020_TO_BT709).T
    linear = np.clip(linear, 0, None)
    if transfer == "HLG":
        a, b, c = _HLG
        scene = np.clip(linear * HLG_WHITE, 0, 1)
        return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-6)) + c)
    m1, m2, c1, c2, c3 = _PQ
    power = np.clip(linear * PQ_WHITE_NITS / 10000, 0, 1) ** m1
    return ((c1 + c2 * power) / (1 + c3 * power)) ** m2
