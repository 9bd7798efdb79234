import re
import subprocess
import sys

import pytest

from qmra.cli import main
from qmra.inference.card import DEFAULT_WEIGHTS


def test_demo_segments_a_synthetic_clip_and_scores_it(tmp_path, capsys, weights):
    from qmra.data import read_labels

    out = tmp_path / "demo"
    assert main(["demo", "--size", "48x32", "--frames", "3", "--objects", "2", "--out", str(out), "--quiet",
                 "--weights", str(weights)]) == 0
    captured = capsys.readouterr()
    assert "J&F" in captured.out and "J / F per object" in captured.out and "frames/s" in captured.out
    threads = re.search(r"end to end \(2 objects, cpu, (\d+) (threads?)\)", captured.out)
    assert threads and threads[2] == ("thread" if threads[1] == "1" else "threads")
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]
    assert read_labels(out / "masks" / "00001.png").shape == (32, 48)
    assert (out / "overlay.mp4").stat().st_size > 0 and (out / "input.mp4").is_file()


def test_missing_shipped_weights_are_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("qmra.inference.card.DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    assert main(["demo", "--size", "48x32", "--frames", "3", "--objects", "1", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: qmra's shipped weights are missing") and "--weights" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason=f"{DEFAULT_WEIGHTS.name} is not there")
def test_demo_uses_the_shipped_weights(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--size", "96x64", "--frames", "4", "--objects", "1", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "RANDOM" not in captured.err + captured.out
    assert "default weights" in captured.out and "held-out DAVIS" in captured.out


def test_the_demo_says_what_the_test_score_of_the_weights_averages():
    from pathlib import Path

    from qmra.commands.demo import _weights_summary
    from qmra.inference.card import WeightsCard
    from qmra.model import ModelConfig

    def card(inference: dict, name: str | None = "w") -> WeightsCard:
        return WeightsCard(Path("w.safetensors"), ModelConfig(), inference, name, {"test_scores": {"J&F-Mean": 0.414}},
                           {"adaptation_seeds": [0, 1, 2]}, {})

    assert _weights_summary(card({"resolution": 320, "adapt_steps": 20})) == (
        ", w (held-out DAVIS test J&F 0.414 at 320 px, adapted 20 steps, mean of 3 adaptation seeds)")
    assert _weights_summary(card({"resolution": 320, "adapt_steps": 20, "ensemble": 3})) == (
        ", w (held-out DAVIS test J&F 0.414 at 320 px, an ensemble of 3 copies, adapted 20 steps, mean of 3 adaptation seeds)")
    assert _weights_summary(card({"resolution": 320, "adapt_steps": 20, "adapt_average": 3, "stage2_box": "largest-blob"})) == (
        ", w (held-out DAVIS test J&F 0.414 at 320 px, adapted 20 steps (3 adaptations averaged), stage 2's box around "
        "stage 1's largest blob, mean of 3 adaptation seeds)")
    assert _weights_summary(card({"resolution": 384, "adapt_steps": 10, "adapt_target": "mask-box"})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px, adapted 10 steps to the box around its own first mask, "
        "mean of 3 adaptation seeds)")
    assert _weights_summary(card({"resolution": 384, "adapt_target": "mask-box"})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px)")  # no adaptation: no target to name
    assert _weights_summary(card({"resolution": 384, "adapt_steps": 20, "mem_every": 5})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px, adapted 20 steps, a frame into memory every 5, mean of 3 adaptation seeds)")
    assert _weights_summary(card({"resolution": 384, "mem_every": 5, "previous_every": 2})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px, a frame into memory every 5, the previous frame renewed every 2)")
    assert _weights_summary(card({"resolution": 384, "previous_every": 2, "min_piece": 0.1})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px, the previous frame renewed every 2, mask pieces under 0.1 of the "
        "largest dropped)")
    assert _weights_summary(card({"resolution": 384, "min_piece": 0.1, "redetect": True})) == (
        ", w (held-out DAVIS test J&F 0.414 at 384 px, mask pieces under 0.1 of the largest dropped, an emptied mask "
        "looked for again by the object's look)")
    assert _weights_summary(card({"resolution": 320, "redetect": False})) == ", w (held-out DAVIS test J&F 0.414 at 320 px)"
    assert _weights_summary(card({"resolution": 320})) == ", w (held-out DAVIS test J&F 0.414 at 320 px)"  # no adaptation: seeds change nothing
    assert _weights_summary(card({}, name=None)) == "" and _weights_summary(None) == ""


def test_model_summary_counts_parameters(capsys):
    assert main(["model", "--backbone", "resnet18", "--variant", "no-crm"]) == 0
    out = capsys.readouterr().out
    parts = [line.split()[0] for line in out.splitlines()[1:]]
    assert parts == ["query_encoder", "memory_encoder", "track_aggregation", "track_decoder",
                     "segment_aggregation", "segment_decoder", "total"]


def test_bad_input_is_one_line_and_exit_code_2(capsys):
    assert main(["demo", "--size", "tiny", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: size must look like") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exited:
        main(["model", "--variant", "w/o-everything"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert err.startswith("qmra: error: model: argument --variant: invalid choice: 'w/o-everything' (choose from 'full', '1stage'")
    assert main(["model", "--weights", "--variant", "no-crm"]) == 2
    assert capsys.readouterr().err == "qmra: error: --weights describes the checkpoint's own network: give it without network options\n"


def test_console_entry_point_reports_errors_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "qmra", "model", "--backbone", "vgg16"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("qmra: error: model: argument --backbone: invalid choice: 'vgg16' (choose from 'resnet50', "
                                     "'resnet34', 'resnet18', 'efficientnet-lite0', 'efficientnet-lite1', 'efficientnet-lite2') "
                                     "(see qmra model --help)")
    assert "Traceback" not in result.stderr


def test_ctrl_c_while_qmra_starts_is_one_line_and_exit_code_130(monkeypatch, capsys):
    # The commands import torch (a second or more): importing qmra.cli must not, so that the console
    # script reaches main, and main builds the parser where Ctrl-C is caught.
    check = "import sys, qmra.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.strip() == "False"

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("qmra.cli.build_parser", interrupted)
    assert main(["segment", "video.mp4"]) == 130
    assert capsys.readouterr().err == "qmra: interrupted\n"


def test_synthetic_writes_mp4_and_davis_layout(tmp_path, capsys):
    from qmra.data import DavisDataset, open_frames

    assert main(["synthetic", str(tmp_path / "clip.mp4"), "--size", "64x48", "--frames", "6", "--objects", "3"]) == 0
    assert open_frames(tmp_path / "clip.mp4").info.num_frames == 6
    assert len(list((tmp_path / "clip-masks").glob("*.png"))) == 6
    assert "first-frame boxes" in capsys.readouterr().out
    assert main(["synthetic", str(tmp_path / "clip.mp4"), "--size", "64x48", "--frames", "6"]) == 2
    assert "already exists (use --overwrite" in capsys.readouterr().err
    assert main(["synthetic", str(tmp_path / "davis"), "--size", "64x48", "--frames", "5", "--name", "toy"]) == 0
    assert DavisDataset(tmp_path / "davis").sequence("toy").num_frames == 5
    assert main(["synthetic", str(tmp_path / "x"), "--objects", "0"]) == 2


@pytest.mark.parametrize("argv,message", [
    (["segment", "v.mp4", "--out", "o"], "qmra: error: segment: one of the arguments --box --boxes --masks is required (see qmra segment --help)"),
    (["segment", "v.mp4", "--box", "1,1,5,5", "--out", "o", "--resolution", "big"],
     "qmra: error: segment: argument --resolution: expected a number of pixels or 'native', got 'big'"),
    (["segment", "v.mp4", "--box", "1,1,5,5", "--out", "o", "--memory-top-k", "0"],
     "qmra: error: segment: argument --memory-top-k: expected at least 1 memory positions, got 0"),
    (["bogus"], "qmra: error: argument COMMAND: invalid choice: 'bogus'"),
    (["bench", "--max-memory-frames", "1"], "qmra: error: --max-memory-frames must be an integer >= 2"),
])
def test_usage_errors_are_one_line_naming_the_flag(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's own errors
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1


def test_compile_on_a_cpu_warns_that_it_is_meant_for_gpus(weights, capsys):
    from qmra.cli import build_parser
    from qmra.commands.common import make_segmenter

    parser = build_parser()
    on_cpu = parser.parse_args(["segment", "v.mp4", "--box", "1,1,5,5", "--out", "o", "--weights", str(weights), "--compile", "default"])
    segmenter = make_segmenter(on_cpu, progress=False)
    assert segmenter.settings.compile == "default"
    assert "qmra: warning: --compile compiles the network first" in capsys.readouterr().err
    make_segmenter(parser.parse_args(["segment", "v.mp4", "--box", "1,1,5,5", "--out", "o", "--weights", str(weights)]), progress=False)
    assert capsys.readouterr().err == ""
