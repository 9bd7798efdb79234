from qmra.data.boxes import Box
from qmra.inference.prompts import Prompt
from qmra.inference.video_run import same_box_warnings


def test_two_objects_boxed_alike_on_one_frame_are_named_once():
    prompts = [
        Prompt(1, 0, Box(0, 10, 50, 40)),
        Prompt(2, 0, Box(1, 10, 50, 41)),    # nearly object 1's box: IoU 0.95
        Prompt(3, 0, Box(0, 10, 25, 40)),    # half of it: told apart
        Prompt(4, 5, Box(0, 10, 50, 40)),    # the same box on another frame: a later object
        Prompt(5, 0, Box(-40, 10, 50, 40)),  # outside the frame it is object 1's box again
    ]
    warnings = same_box_warnings(prompts, width=64, height=48)
    assert [w.split(" have ")[0] for w in warnings] == ["objects 1 and 2", "objects 1 and 5", "objects 2 and 5"]
    assert "on frame 0 (IoU 0.95)" in warnings[0] and "may get no pixels" in warnings[0]
    assert same_box_warnings(prompts[2:4], width=64, height=48) == []
