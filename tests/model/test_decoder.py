import torch

from qmra.model.decoder import Decoder


def test_shared_skips_run_their_path_once_and_equal_the_expanded_batch():
    torch.manual_seed(0)
    decoder = Decoder(in_channels=12, r3_channels=6, r2_channels=5, channels=8).eval()
    x = torch.randn(3, 12, 2, 3)
    r3, r2 = torch.randn(1, 6, 4, 6), torch.randn(1, 5, 8, 12)
    batches: list[int] = []
    hooks = [conv.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
             for conv in (decoder.refine_r3.skip_conv, decoder.refine_r2.skip_conv)]
    with torch.no_grad():
        shared = decoder(x, r3, r2)
        for hook in hooks:
            hook.remove()
        expanded = decoder(x, r3.expand(3, -1, -1, -1), r2.expand(3, -1, -1, -1))
    assert batches == [1, 1]  # each skip path ran once for the three objects
    assert shared.shape == (3, 2, 32, 48)
    assert torch.allclose(shared, expanded, atol=1e-6)
