from pathlib import Path

import av
import numpy as np
import pytest

from qmra.data import open_frames
from qmra.data.audio import AudioSource, audio_source
from qmra.data.video_writer import Mp4Writer

RATE, FPS = 48000, 10


def video_with_sound(path: Path, audio_codec: str = "aac", seconds: float = 2.0, tone_from: float = 1.0,
                     channels: int = 2) -> Path:
    """A 64x48 video of ``seconds`` at 10 fps whose sound is silent until ``tone_from`` seconds, then a
    440 Hz tone; the container is the file's suffix's."""
    container_format = {".mp4": "mp4", ".mov": "mov", ".webm": "webm"}[path.suffix]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container_format) as out:
        video = out.add_stream("libvpx-vp9" if container_format == "webm" else "libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(audio_codec, rate=RATE)
        audio.layout = layout
        sample_format = audio.codec_context.codec.audio_formats[0]
        frames, written, step = round(seconds * FPS), 0, 960
        for index in range(frames):
            image = np.full((48, 64, 3), index * 10 % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
            while written < (index + 1) * RATE // FPS:
                times = np.arange(written, written + step) / RATE
                wave = np.where(times >= tone_from, 0.5 * np.sin(2 * np.pi * 440 * times), 0).astype(np.float32)
                planes = np.repeat(wave[None], channels, axis=0)
                if not sample_format.is_planar:
                    planes = planes.T.reshape(1, -1)
                if sample_format.name.startswith("s16"):
                    planes = (planes * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(planes, format=sample_format.name, layout=layout)
                frame.sample_rate, frame.pts = RATE, written
                for packet in audio.encode(frame):
                    out.mux(packet)
                written += step
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path


def sound(path: Path) -> tuple[np.ndarray, int]:
    """The first audio track's samples (channels × n float32) and rate; None when there is none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, 0
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        return np.concatenate(frames, axis=1), stream.codec_context.sample_rate


def loudness(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    window = samples[:, round(start * rate):round(end * rate)]
    return float(np.sqrt(np.mean(window.astype(np.float64) ** 2)))


def _write(path: Path, frames: int, audio: AudioSource | None, fps: float = FPS) -> Path:
    with Mp4Writer(path, 64, 48, fps, audio=audio) as writer:
        for _ in range(frames):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    return path


@pytest.mark.parametrize("name, codec", [("aac.mp4", "aac"), ("pcm.mov", "pcm_s16le"), ("opus.webm", "libopus")])
def test_any_sound_is_written_as_aac_for_as_long_as_the_frames(tmp_path, name, codec):
    source = video_with_sound(tmp_path / name, codec)
    written = _write(tmp_path / "out.mp4", 20, audio_source(open_frames(source)))
    with av.open(str(written)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    samples, rate = sound(written)
    assert rate == RATE and samples.shape[0] == 2 and abs(samples.shape[1] / rate - 2.0) < 0.03
    assert loudness(samples, rate, 0.1, 0.9) < 0.01 and loudness(samples, rate, 1.1, 1.9) > 0.3  # in step


def test_a_later_start_drops_the_sound_before_it_and_the_length_follows_the_frames(tmp_path):
    source = video_with_sound(tmp_path / "a.mp4")
    assert audio_source(open_frames(source), first=5) == AudioSource(source, 0.5)
    samples, rate = sound(_write(tmp_path / "part.mp4", 10, AudioSource(source, 0.5)))  # source seconds 0.5-1.5
    assert abs(samples.shape[1] / rate - 1.0) < 0.03
    assert loudness(samples, rate, 0.05, 0.45) < 0.01 and loudness(samples, rate, 0.55, 0.95) > 0.3
    # Every 4th frame at a quarter of the rate: the whole sound, in step.
    samples, rate = sound(_write(tmp_path / "sampled.mp4", 5, AudioSource(source), fps=FPS / 4))
    assert abs(samples.shape[1] / rate - 2.0) < 0.03 and loudness(samples, rate, 1.1, 1.9) > 0.3


def test_mono_stays_mono_and_no_sound_means_no_track(tmp_path):
    samples, _ = sound(_write(tmp_path / "mono.mp4", 5, AudioSource(video_with_sound(tmp_path / "m.mp4", channels=1))))
    assert samples.shape[0] == 1
    silent = tmp_path / "silent.mp4"
    _write(silent, 3, None)
    assert audio_source(open_frames(silent)) is None and sound(_write(tmp_path / "again.mp4", 3, None))[0] is None
    folder = tmp_path / "frames"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(open_frames(silent).read(0)).save(folder / "0.png")
    assert audio_source(open_frames(folder)) is None


def test_an_aborted_video_leaves_no_file(tmp_path):
    source = video_with_sound(tmp_path / "a.mp4")
    writer = Mp4Writer(tmp_path / "out.mp4", 64, 48, FPS, audio=AudioSource(source))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == [source]


def test_a_damaged_sound_track_ends_the_sound_and_keeps_the_video(tmp_path):
    source = video_with_sound(tmp_path / "a.mp4")
    writer = Mp4Writer(tmp_path / "out.mp4", 64, 48, FPS, audio=AudioSource(source))
    decoded = writer.audio._frames

    def damaged():  # about half a second of sound, then the decoder fails
        for index, frame in enumerate(decoded):
            if index == 24:
                raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame

    writer.audio._frames = damaged()
    with writer:
        for _ in range(20):
            writer.write(np.zeros((48, 64, 3), np.uint8))
    assert writer.audio.failure.startswith("the sound could not be decoded past 0.")
    assert open_frames(tmp_path / "out.mp4").info.num_frames == 20
    samples, rate = sound(tmp_path / "out.mp4")
    assert 0.3 < samples.shape[1] / rate < 0.6
