import json

import pytest

from qmra.cli import main
from qmra.model import QMRA
from qmra.model.checkpoint import save_checkpoint
from qmra.presets import PRESETS
from tests.tiny import TINY


def test_bench_prints_speed_parts_backbone_and_memory_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--preset", "fast", "--backbone", "resnet18", "--decoder-channels", "16", "--size", "64x48",
                 "--objects", "1,2", "--frames", "2", "--runs", "2", "--warmup", "1", "--memory-frames", "3,6",
                 "--model-only", "yes", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "1 object(s):" in text and "2 object(s):" in text and "FPS" in text
    assert "parts (ms/frame, profiled run): encoders" in text and "one backbone pass" in text
    assert "peak RSS after 6 frames / after 3 frames" in text
    assert "model alone (frames in memory, results not written)" in text
    assert len(out.read_text().splitlines()) == 1  # one line per run: easy to collect and compare
    result = json.loads(out.read_text())
    assert [s["objects"] for s in result["speed"]] == [1, 2]
    assert list(result)[:3] == ["commit", "fps", "model_fps"]  # the numbers to compare come first
    assert set(result["fps"]) == set(result["model_fps"]) == {"1", "2"} and result["peak_rss_ratio"] > 0
    assert all(s["model_fps"] > 0 and len(s["model_run_fps"]) == 2 for s in result["speed"])
    for speed in result["speed"]:
        assert speed["fps"] > 0 and len(speed["run_fps"]) == 2
        assert set(speed["parts_s"]) == {"encoders", "memory_read", "decoders", "crm", "merge", "io"}
        assert speed["parts_s"]["encoders"] > 0 and speed["parts_s"]["decoders"] > 0
    assert result["backbone_s"] > 0 and [m["frames"] for m in result["memory"]] == [3, 6]
    assert result["model"]["decoder_channels"] == 16 and result["settings"]["resolution"] == PRESETS["fast"].settings.resolution


def test_bench_on_cpu_is_quick_by_default_and_says_how_to_measure_the_steady_state(capsys):
    code = main(["bench", "--preset", "fast", "--decoder-channels", "16", "--size", "64x48", "--no-profile"])
    assert code == 0
    text = capsys.readouterr().out
    assert "qmra bench --objects 1,3 --warmup full --frames 20 --memory-frames 100,2000" in text
    assert "timing: 1 warm-up frames, then 3 timed run(s) of 2 frames" in text and "peak RSS" not in text
    assert "1 object(s):" in text and "3 object(s):" not in text and "model alone" not in text


@pytest.mark.slow
def test_bench_warms_up_until_the_memory_is_full_when_asked(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--preset", "fast", "--decoder-channels", "16", "--size", "64x48", "--objects", "1", "--warmup",
                 "full", "--frames", "1", "--runs", "1", "--no-profile", "--memory-frames", "none", "--json", str(out)])
    assert code == 0
    # The fast preset stores a frame every 5: first + previous + 14 more fill the 16 slots at frame 71.
    assert "timing: 72 warm-up frames (until the memory is full)" in capsys.readouterr().out
    speed = json.loads(out.read_text())["speed"][0]
    assert speed["memory_frames_held"] == 16 and speed["parts_s"] == {}
    # The schedule is the user's to choose, and the warm-up follows it.
    assert main(["bench", "--preset", "fast", "--decoder-channels", "16", "--size", "64x48", "--objects", "1", "--frames", "1",
                 "--runs", "1", "--no-profile", "--memory-frames", "none", "--mem-every", "5", "--max-memory-frames", "4",
                 "--warmup", "full"]) == 0
    assert "timing: 12 warm-up frames" in capsys.readouterr().out


def test_bench_times_weights_with_the_settings_they_recommend_unless_a_preset_is_given(tmp_path, capsys):
    recommending = save_checkpoint(tmp_path / "r.safetensors", QMRA(TINY),
                                   metadata={"inference": {"resolution": 40, "mem_every": 3, "stage2_box": "largest-blob"}})
    common = ["bench", "--weights", str(recommending), "--size", "64x48", "--no-profile"]
    assert main([*common, "--json", str(tmp_path / "own.json")]) == 0
    assert "(their settings)" in capsys.readouterr().out
    settings = json.loads((tmp_path / "own.json").read_text())["settings"]
    assert (settings["resolution"], settings["mem_every"], settings["stage2_box"]) == (40, 3, "largest-blob")
    assert main([*common, "--mem-every", "7", "--json", str(tmp_path / "switch.json")]) == 0
    settings = json.loads((tmp_path / "switch.json").read_text())["settings"]
    assert (settings["resolution"], settings["mem_every"]) == (40, 7)  # a switch still applies on top
    assert main([*common, "--preset", "paper", "--json", str(tmp_path / "paper.json")]) == 0
    result = json.loads((tmp_path / "paper.json").read_text())
    assert result["settings"]["resolution"] == PRESETS["paper"].settings.resolution and result["preset"] == "paper"
    assert result["model"]["decoder_channels"] == TINY.decoder_channels  # the network stays the weights'


def test_bench_bad_input_is_one_line(capsys):
    for args, message in ((["--objects", "0"], "--objects takes numbers >= 1"),
                          (["--warmup", "0"], "--warmup must be at least 1"),
                          (["--warmup", "lots"], "--warmup takes a number of frames or 'full'"),
                          (["--max-memory-frames", "1"], "--max-memory-frames must be an integer >= 2"),
                          (["--size", "big"], "size must look like 854x480"),
                          (["--device", "tpu"], "unknown device")):
        assert main(["bench", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("qmra: error:") and message in err and err.count("\n") == 1
