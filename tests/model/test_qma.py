import math

import pytest
import torch

from qmra.model import KeyValueMaps, MemoryTokens
from qmra.model import memory_read as read_tokens
from qmra.model.qma import ATTENTION_KERNELS, BidirectionalChannelAggregation, QueryMemoryAggregation, ReadMode


def memory_read(query_key, memory_key, memory_value, kernel="auto"):
    """The Memory Read on maps stacked by frame (B×T×C×h×w), as the equations write them."""
    tokens = MemoryTokens.from_maps(memory_key, memory_value)
    return read_tokens(query_key, tokens.key, tokens.value, kernel)


def _reference_read(query_key, memory_key, memory_value):
    """Eq. 6 written out: a (hw × Thw) similarity, row softmax, weighted sum of memory values."""
    b, ck, h, w = query_key.shape
    q = query_key.reshape(b, ck, h * w)  # B×Ck×HW
    k = memory_key.transpose(1, 2).reshape(b, ck, -1)  # B×Ck×THW
    v = memory_value.transpose(1, 2).reshape(b, memory_value.shape[2], -1)  # B×Cv×THW
    similarity = torch.einsum("bcq,bcm->bqm", q, k) / math.sqrt(ck)
    attention = similarity.softmax(dim=-1)
    return torch.einsum("bqm,bvm->bvq", attention, v).reshape(b, -1, h, w)


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
def test_memory_read_matches_equation_6(kernel):
    qk, mk, mv = torch.randn(2, 16, 3, 5), torch.randn(2, 4, 16, 3, 5), torch.randn(2, 4, 8, 3, 5)
    assert torch.allclose(memory_read(qk, mk, mv, kernel), _reference_read(qk, mk, mv), atol=1e-5)


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("split", [False, True])
def test_values_wider_than_keys_are_read_in_key_wide_heads(monkeypatch, kernel, masked, split):
    # Cv = 4·Ck: on CUDA SDPA reads the values as 4 heads sharing query and keys (``split``, forced
    # here on the CPU); every value channel must come back in its place, with the single-head softmax.
    from qmra.model.qma import sdpa_heads

    assert sdpa_heads(torch.device("cuda"), 8, 32) == 4 and sdpa_heads(torch.device("cpu"), 8, 32) == 1
    assert sdpa_heads(torch.device("cuda"), 8, 12) == 1
    if split:
        monkeypatch.setattr("qmra.model.qma.sdpa_heads", lambda device, ck, cv: cv // ck)
    qk, mk, mv = torch.randn(1, 8, 3, 5), torch.randn(3, 2, 8, 3, 5), torch.randn(3, 2, 32, 3, 5)
    tokens = MemoryTokens.from_maps(mk, mv)
    empty = torch.zeros(1, 1, 2, 15)
    if masked:
        empty[..., 1, :] = float("-inf")
    read = read_tokens(qk, tokens.key, tokens.value, kernel, empty.flatten(2))
    kept = slice(0, 1) if masked else slice(0, 2)
    expected = _reference_read(qk.expand(3, -1, -1, -1), mk[:, kept], mv[:, kept])
    assert torch.allclose(read, expected, atol=1e-5)


def _reference_top_k_read(query_key, memory_key, memory_value, k):
    """Each query position on its own: its k highest similarities, softmax over those, their values."""
    b, ck, h, w = query_key.shape
    q = query_key.reshape(b, ck, h * w).transpose(1, 2)  # B×HW×Ck
    keys = memory_key.transpose(1, 2).reshape(b, ck, -1).transpose(1, 2)  # B×N×Ck
    values = memory_value.transpose(1, 2).reshape(b, memory_value.shape[2], -1).transpose(1, 2)  # B×N×Cv
    out = torch.zeros(b, h * w, values.shape[2])
    for i in range(b):
        for p in range(h * w):
            similarity = keys[i] @ q[i, p] / math.sqrt(ck)
            best = similarity.argsort(descending=True)[:k]
            out[i, p] = similarity[best].softmax(dim=0) @ values[i, best]
    return out.transpose(1, 2).reshape(b, -1, h, w)


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
def test_top_k_read_is_a_softmax_over_each_positions_k_best_matches(monkeypatch, kernel):
    qk, mk, mv = torch.randn(2, 16, 3, 5), torch.randn(2, 4, 16, 3, 5), torch.randn(2, 4, 8, 3, 5)
    tokens = MemoryTokens.from_maps(mk, mv)
    got = read_tokens(qk, tokens.key, tokens.value, kernel, top_k=7)
    assert torch.allclose(got, _reference_top_k_read(qk, mk, mv, 7), atol=1e-5)
    assert not torch.allclose(got, _reference_read(qk, mk, mv), atol=1e-3)  # it is not the full read
    # k at least the memory's size is the paper's read, on every kernel.
    assert torch.allclose(read_tokens(qk, tokens.key, tokens.value, kernel, top_k=60), _reference_read(qk, mk, mv), atol=1e-5)
    # In blocks of query positions it is the same.
    monkeypatch.setattr("qmra.model.qma.ATTENTION_BLOCK", 2 * 60 * 4)
    assert torch.allclose(read_tokens(qk, tokens.key, tokens.value, kernel, top_k=7), got, atol=1e-6)


def test_top_k_read_gradients_are_the_dense_formulas():
    # The read sums K gathered values; its gradients (adaptation and training go through it) must be
    # those of the K-sparse softmax written as a dense product.
    qk = torch.randn(2, 16, 3, 5, dtype=torch.float64, requires_grad=True)
    mk = torch.randn(2, 4, 16, 3, 5, dtype=torch.float64)
    mv = torch.randn(2, 4, 8, 3, 5, dtype=torch.float64)
    tokens = MemoryTokens.from_maps(mk, mv)
    key, value = tokens.key.detach().requires_grad_(), tokens.value.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda q, k, v: read_tokens(q, k, v, "auto", top_k=7), (qk, key, value))


def test_top_k_read_takes_a_view_of_a_larger_memory_buffer():
    # Memory tokens are the first N slots of a buffer with room for more: per object a contiguous
    # view, for several objects not one; the read must take either as it is.
    key_buffer, value_buffer = torch.randn(3, 100, 16), torch.randn(3, 100, 8)
    qk = torch.randn(1, 16, 3, 5)
    got = read_tokens(qk, key_buffer[:, :60], value_buffer[:, :60], "auto", top_k=7)
    expected = read_tokens(qk, key_buffer[:, :60].contiguous(), value_buffer[:, :60].contiguous(), "matmul", top_k=7)
    assert torch.equal(got, expected)

    def maps(tokens: torch.Tensor) -> torch.Tensor:  # B×T·h·w×C → B×T×C×h×w, 4 frames of 3×5
        return tokens.unflatten(1, (4, 15)).transpose(2, 3).unflatten(3, (3, 5))

    assert torch.allclose(got, _reference_top_k_read(qk.expand(3, -1, -1, -1), maps(key_buffer[:, :60]),
                                                     maps(value_buffer[:, :60]), 7), atol=1e-5)


@pytest.mark.parametrize("stored", [torch.float32, torch.bfloat16])
def test_top_k_read_under_autocast_takes_scores_and_values_of_either_precision(stored):
    # Under bf16 autocast the softmax weights and the stored values can differ in precision (on CUDA
    # softmax runs in fp32 while the memory is bf16; here the reverse): the read must take both.
    qk, mk, mv = torch.randn(1, 16, 3, 5), torch.randn(2, 4, 16, 3, 5), torch.randn(2, 4, 8, 3, 5)
    tokens = MemoryTokens.from_maps(mk.to(stored), mv.to(stored))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = read_tokens(qk, tokens.key, tokens.value, "auto", top_k=7)
    expected = _reference_top_k_read(qk.expand(2, -1, -1, -1), mk, mv, 7)
    assert got.shape == expected.shape and (got.float() - expected).abs().mean() < 0.05


def test_top_k_never_reads_empty_slots():
    # 2 of 4 frames are empty slots; k is more than the 30 stored positions, so some of the k best
    # are empty: they get no weight, and the read equals the paper's read of the stored frames.
    qk, mk, mv = torch.randn(1, 16, 3, 5), torch.randn(1, 4, 16, 3, 5), torch.randn(1, 4, 8, 3, 5)
    tokens = MemoryTokens.from_maps(mk, mv)
    empty = torch.zeros(1, 1, 4, 15)
    empty[..., [1, 3], :] = float("-inf")
    masked = read_tokens(qk, tokens.key, tokens.value, "auto", empty.flatten(2), top_k=40)
    assert torch.allclose(masked, _reference_read(qk, mk[:, [0, 2]], mv[:, [0, 2]]), atol=1e-5)


def test_read_modes_are_checked():
    from qmra.model import ReadMode

    with pytest.raises(ValueError, match="kernel"):
        ReadMode("flash")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="top_k"):
            ReadMode(top_k=bad)
    # The settings check the same, naming their own fields.
    from qmra.errors import ConfigError
    from qmra.inference import InferenceSettings

    with pytest.raises(ConfigError, match="^memory_top_k must"):
        InferenceSettings(memory_top_k=0)
    with pytest.raises(ConfigError, match="^attention must"):
        InferenceSettings(attention="flash")
    assert InferenceSettings(attention="sdpa", memory_top_k=30).read_mode == ReadMode("sdpa", 30)


@pytest.mark.parametrize("kernel", ["matmul", "sdpa"])
def test_read_in_blocks_of_queries_equals_one_block(monkeypatch, kernel):
    import torch.nn.functional as F

    qk, mk, mv = torch.randn(3, 16, 5, 7), torch.randn(3, 2, 16, 4, 4), torch.randn(3, 2, 8, 4, 4)
    whole = memory_read(qk, mk, mv, kernel)
    queries_per_call = []
    fused = F.scaled_dot_product_attention

    def recording(q, *args, **kwargs):
        queries_per_call.append(q.shape[-2])
        return fused(q, *args, **kwargs)

    monkeypatch.setattr("qmra.model.qma.F.scaled_dot_product_attention", recording)
    monkeypatch.setattr("qmra.model.qma.ATTENTION_BLOCK", 3 * 32 * 4)  # 4 query positions per block: 9 blocks
    assert torch.allclose(memory_read(qk, mk, mv, kernel), whole, atol=1e-6)
    if kernel == "sdpa":  # its peak memory is bounded by the block too, whatever backend PyTorch picks
        assert queries_per_call == [4] * 8 + [3]
    with pytest.raises(ValueError, match="kernel"):
        memory_read(qk, mk, mv, "flash")


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
@pytest.mark.parametrize("per_object", [False, True])
def test_empty_positions_get_no_weight(kernel, per_object):
    # 4 memory frames, of which frames 1 and 3 are empty slots: the read equals that of frames 0 and 2.
    qk, mk, mv = torch.randn(2, 16, 3, 5), torch.randn(2, 4, 16, 3, 5), torch.randn(2, 4, 8, 3, 5)
    tokens = MemoryTokens.from_maps(mk, mv)
    empty = torch.zeros(1, 1, 4, 15)
    empty[..., [1, 3], :] = float("-inf")
    empty = empty.flatten(2).expand(2 if per_object else 1, -1, -1)
    masked = read_tokens(qk, tokens.key, tokens.value, kernel, empty)
    assert torch.allclose(masked, memory_read(qk, mk[:, [0, 2]], mv[:, [0, 2]], kernel), atol=1e-5)
    # The "no-qma" variant's average runs over the stored frames alone too.
    aggregation = QueryMemoryAggregation(4, 16, 8, 1, use_memory_read=False)
    features = torch.randn(1, 4, 3, 5)
    stored = MemoryTokens.from_maps(None, mv[:, [0, 2]])
    assert torch.allclose(aggregation(features, MemoryTokens(None, tokens.value, empty)), aggregation(features, stored), atol=1e-6)


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
def test_each_objects_empty_positions_are_its_own(kernel):
    # Object 0 holds frames 0 and 1, object 1 frame 0 alone: read together, each reads as it would alone.
    qk, mk, mv = torch.randn(1, 16, 3, 5), torch.randn(2, 2, 16, 3, 5), torch.randn(2, 2, 8, 3, 5)
    tokens = MemoryTokens.from_maps(mk, mv)
    empty = torch.zeros(2, 1, 2, 15)
    empty[1, :, 1] = float("-inf")
    together = read_tokens(qk, tokens.key, tokens.value, kernel, empty.flatten(2))
    assert torch.allclose(together[:1], memory_read(qk, mk[:1], mv[:1], kernel), atol=1e-5)
    assert torch.allclose(together[1:], memory_read(qk, mk[1:, :1], mv[1:, :1], kernel), atol=1e-5)


def test_objects_with_and_without_empty_positions_join_into_one_batch():
    a = MemoryTokens(torch.randn(1, 6, 4), torch.randn(1, 6, 2), torch.tensor([[[0.0] * 3 + [float("-inf")] * 3]]))
    b = MemoryTokens(torch.randn(2, 6, 4), torch.randn(2, 6, 2))
    joined = MemoryTokens.concat([a, b], dim=0)
    assert joined.empty.shape == (3, 1, 6)
    assert torch.isinf(joined.empty[0, 0, 3:]).all() and (joined.empty[1:] == 0).all()


def test_tokens_of_single_frames_equal_tokens_of_stacked_maps():
    frames = [KeyValueMaps(torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5)) for _ in range(3)]
    stacked = MemoryTokens.from_maps(torch.stack([f.key for f in frames], 1), torch.stack([f.value for f in frames], 1))
    joined = MemoryTokens.from_frames(frames)
    assert joined.key.shape == (2, 3 * 15, 4) and joined.value.shape == (2, 3 * 15, 6)
    assert torch.equal(joined.key, stacked.key) and torch.equal(joined.value, stacked.value)
    assert torch.equal(joined.value[1, 15 + 2 * 5 + 4], frames[1].value[1, :, 2, 4])  # frame 1, row 2, column 4


def test_memory_read_does_not_depend_on_the_order_of_memory_frames():
    qk, mk, mv = torch.randn(1, 16, 4, 4), torch.randn(1, 5, 16, 4, 4), torch.randn(1, 5, 8, 4, 4)
    order = torch.tensor([3, 0, 4, 2, 1])
    assert torch.allclose(memory_read(qk, mk, mv), memory_read(qk, mk[:, order], mv[:, order]), atol=1e-6)


def test_a_single_matching_memory_position_is_read_out():
    # A strongly matching key concentrates the softmax on one position: the read returns its value.
    qk = torch.zeros(1, 2, 1, 1)
    qk[0, 0] = 50.0
    mk = torch.zeros(1, 2, 2, 1, 2)
    mk[0, 1, 0, 0, 1] = 50.0
    mv = torch.arange(1.0, 5.0).view(1, 2, 1, 1, 2)
    assert torch.allclose(memory_read(qk, mk, mv), torch.tensor(4.0).view(1, 1, 1, 1))


def test_batch_one_query_is_broadcast_over_objects():
    qk, mk, mv = torch.randn(1, 16, 3, 3), torch.randn(3, 2, 16, 3, 3), torch.randn(3, 2, 8, 3, 3)
    together = memory_read(qk, mk, mv)
    for i in range(3):
        assert torch.allclose(together[i : i + 1], memory_read(qk, mk[i : i + 1], mv[i : i + 1]), atol=1e-6)


def test_bca_weights_lie_in_zero_one_and_reweight_channels():
    bca = BidirectionalChannelAggregation(value_channels=8, reduction=4)
    vq, vm = torch.randn(2, 8, 3, 4) * 10, torch.randn(2, 8, 3, 4) * 10
    w_query, w_memory = bca.channel_weights(vq, vm)
    assert w_query.shape == w_memory.shape == (2, 8)
    for w in (w_query, w_memory):
        assert bool(((w > 0) & (w < 1)).all())
    out = bca(vq, vm)
    assert out.shape == (2, 16, 3, 4)
    assert torch.allclose(out[:, :8], vq * w_query[:, :, None, None])
    assert torch.allclose(out[:, 8:], vm * w_memory[:, :, None, None])


def test_bca_weights_depend_on_both_directions():
    bca = BidirectionalChannelAggregation(value_channels=8, reduction=2)
    vq, vm = torch.randn(1, 8, 2, 2), torch.randn(1, 8, 2, 2)
    w_query, _ = bca.channel_weights(vq, vm)
    w_query_other_memory, _ = bca.channel_weights(vq, vm + 3.0)
    assert not torch.allclose(w_query, w_query_other_memory)


def test_without_qma_query_and_averaged_memory_values_are_concatenated():
    qma = QueryMemoryAggregation(6, 4, 5, 1, use_memory_read=False)
    assert qma.query_projection.key is None and qma.bca is None
    features = torch.randn(1, 6, 2, 3)
    values = torch.randn(2, 3, 5, 2, 3)  # 2 objects, 3 frames
    out = qma(features, MemoryTokens.from_maps(None, values))
    assert out.shape == (2, 10, 2, 3)
    assert torch.allclose(out[:, 5:], values.mean(dim=1), atol=1e-6)
    assert torch.allclose(out[0, :5], qma.query_projection.value(features)[0])


def test_query_blocks_only_where_all_scores_could_be_materialised():
    from qmra.model.qma import ATTENTION_BLOCK, query_block

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    scores = 3 * 16 * 1620  # per query: 3 objects × 16 memory frames of 854×480 at stride 16
    assert query_block(True, cuda, scores, 128) is None  # fused kernels tile by themselves
    assert query_block(True, cuda, scores, 12) == ATTENTION_BLOCK // scores  # a Ck no fused kernel takes
    assert query_block(True, cpu, scores, 128) == ATTENTION_BLOCK // scores  # SDPA's math path may run
    assert query_block(False, cuda, scores, 128) == ATTENTION_BLOCK // scores
    assert query_block(False, cpu, 10**9, 128) == 1


def test_memory_keeps_features_only_where_projecting_after_the_read_is_exact_and_cheaper():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    widening = QueryMemoryAggregation(6, 4, 10, 1)
    assert widening.keeps_features(ReadMode(), cpu)  # auto: the matmul kernel on a CPU
    assert widening.keeps_features(ReadMode("matmul", top_k=3), cuda)
    assert not widening.keeps_features(ReadMode(), cuda)  # SDPA reads values in key-wide heads
    assert not widening.keeps_features(ReadMode("sdpa"), cpu)
    assert not QueryMemoryAggregation(6, 4, 10, 3).keeps_features(ReadMode(), cpu)  # a 3×3 mixes neighbours
    assert not QueryMemoryAggregation(12, 4, 10, 1).keeps_features(ReadMode(), cpu)  # no fewer channels
    assert not QueryMemoryAggregation(6, 4, 10, 1, use_memory_read=False).keeps_features(ReadMode(), cpu)


@pytest.mark.parametrize("top_k", [None, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_a_memory_of_features_reads_as_the_memory_of_their_values(top_k, masked):
    torch.manual_seed(0)
    qma = QueryMemoryAggregation(6, 4, 10, 1).eval()
    with torch.no_grad():
        qma.memory_projection.value.bias.uniform_(-2, 2)  # the bias must pass through the read unchanged
    frames = [torch.randn(2, 6, 3, 4) for _ in range(3)]  # 2 objects, 3 memory frames
    features = MemoryTokens.from_frames([qma.project_memory(f, ReadMode("matmul")) for f in frames])
    values = MemoryTokens.from_frames([qma.project_memory(f, ReadMode("sdpa")) for f in frames])
    assert features.value.shape == (2, 36, 6) and values.value.shape == (2, 36, 10)
    assert torch.equal(features.key, values.key)
    if masked:  # the last frame's slot is empty
        empty = torch.zeros(1, 1, 36)
        empty[..., 24:] = float("-inf")
        features, values = features._replace(empty=empty), values._replace(empty=empty)
    query = torch.randn(1, 6, 3, 4)
    read = ReadMode("matmul", top_k)
    with torch.no_grad():
        expected = qma(query, values, read)
        assert torch.allclose(qma(query, features, read), expected, atol=1e-5)
        if top_k is None:
            assert torch.allclose(qma(query, features, ReadMode("sdpa")), expected, atol=1e-5)
