"""The QMRA network: two-stage re-aggregation (track, then segment) with a cascaded refinement.

The module holds weights only. Per-video state (the memory) is built by the caller from the
parts below, so that inference can encode each memory frame once, keep its keys and values, and
share one query encoding across all objects of a frame:

- :meth:`QMRA.encode_query` — ``fq(I)``, once per frame, shared by every object;
- :meth:`QMRA.encode_memory` — ``fm(I, B)``; :meth:`QMRA.memorize` turns it into keys and values;
- :meth:`QMRA.predict` — one query frame against a :class:`Memory`: :meth:`QMRA.track` (stage 1),
  then :meth:`QMRA.segment` (stage 2, re-encoded with stage 1's box) and :meth:`QMRA.refine` (the CRM);
- :meth:`QMRA.start` — an object's first frame, given its box: its memory entry and prediction;
- :meth:`QMRA.memory_entry` — a predicted frame's memory entry (:meth:`QMRA.tracked_box_maps`).

:meth:`QMRA.forward` (training) chains them for clips of T memory frames and one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.profiler import record_function

from qmra.model.config import ModelConfig
from qmra.model.crm import CascadedRefinementModule, FoldedCRMInput
from qmra.model.decoder import Decoder
from qmra.model.backbones import Trunk, make_trunk, normalization
from qmra.model.box_fusion import BoxFusion
from qmra.model.features import BackboneFeatures
from qmra.model.preprocess import STRIDE, Padding, prepare_image
from qmra.model.prior import mask_prior, rectangle_prior
from qmra.model.qma import KeyValueMaps, MemoryTokens, QueryMemoryAggregation, ReadMode
from qmra.model.weights import BackboneLoadReport, load_backbone_weights


@dataclass(frozen=True)
class MemoryFrame:
    """Keys and values of one memory frame for both stages: tensors B×C×h×w (B objects).

    ``segment`` is None for the ``1stage`` variant.
    """

    track: KeyValueMaps
    segment: KeyValueMaps | None


@dataclass(frozen=True)
class Memory:
    """T memory frames of B objects as tokens (:class:`MemoryTokens`, B×T·h·w×C), for both stages.

    ``frame_tokens`` is h·w, the positions of one frame. The order of the frames does not matter.
    """

    track: MemoryTokens
    segment: MemoryTokens | None
    frame_tokens: int

    @classmethod
    def stack(cls, frames: Sequence[MemoryFrame]) -> "Memory":
        """T frames' keys and values (B×C×h×w each) → one memory (copies them into token layout)."""
        frames = list(frames)
        if not frames:
            raise ValueError("memory needs at least one frame")
        segment = None if frames[0].segment is None else MemoryTokens.from_frames([f.segment for f in frames])  # type: ignore[misc]
        h, w = frames[0].track.value.shape[-2:]
        return cls(MemoryTokens.from_frames([f.track for f in frames]), segment, h * w)

    @classmethod
    def concat_objects(cls, memories: Sequence["Memory"]) -> "Memory":
        """Memories of equal T and frame size, B₁, B₂, ... objects → one batch of ΣBᵢ objects."""
        memories = list(memories)
        if len(memories) == 1:
            return memories[0]
        segment = None if memories[0].segment is None else MemoryTokens.concat([m.segment for m in memories], dim=0)  # type: ignore[misc]
        return cls(MemoryTokens.concat([m.track for m in memories], dim=0), segment, memories[0].frame_tokens)

    @property
    def num_frames(self) -> int:
        return self.track.value.shape[1] // self.frame_tokens

    @property
    def batch_size(self) -> int:
        return self.track.value.shape[0]


@dataclass(frozen=True)
class Stage:
    """One stage's result on the padded grid: ``aggregated`` B×2C×h×w (the QMA's output, which the
    CRM reads) and ``logits`` B×2×H'×W' (background, object)."""

    aggregated: torch.Tensor
    logits: torch.Tensor


@dataclass
class QMRAOutput:
    """Predictions for one query frame, B×2×H×W logits (background, object) at the input size.

    - ``track_logits``: stage 1 — the box map (a mask for ``2stage-noalign``); None for ``1stage``.
    - ``mask_logits``: stage 2 — the mask Sq (for ``1stage``: its single prediction).
    - ``refined_logits``: the CRM's refined mask Sr; None without a CRM.
    - ``query_prior``: B×1×H×W, the stage-2 prior Mq (filled rectangle of stage 1); None for ``1stage``.
    - ``query_encoding``: the stage-2 encoder features of the query at the padded size. When
      ``QMRA.config.stage2_encoding_is_memory`` this is exactly ``fm(query, query_prior)``, ready
      for :meth:`QMRA.memorize`.
    - ``track_target``: what stage 1 is trained against, ``"box"`` or ``"mask"`` (None for ``1stage``).
    """

    mask_logits: torch.Tensor
    track_logits: torch.Tensor | None = None
    refined_logits: torch.Tensor | None = None
    query_prior: torch.Tensor | None = None
    query_encoding: BackboneFeatures | None = None
    track_target: str | None = None

    @property
    def logits(self) -> torch.Tensor:
        """The network's final mask logits: the refined mask where there is one, else Sq."""
        return self.mask_logits if self.refined_logits is None else self.refined_logits

    def probability(self) -> torch.Tensor:
        """B×1×H×W object probability of the final mask."""
        return torch.softmax(self.logits, dim=1)[:, 1:2]


class QMRA(nn.Module):
    """Query-Memory Re-Aggregation network (Lin et al., AAAI 2021). See the module docstring."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.query_encoder = make_trunk(config.backbone, in_channels=3)
        # fm: a trunk of its own (the paper), or the query encoder's features joined with the box map.
        self.memory_encoder = make_trunk(config.backbone, in_channels=4) if config.memory_encoder == "own" else None
        self.box_fusion = BoxFusion(self.query_encoder.channels) if config.memory_encoder == "shared" else None
        # f_q^r of Eq. 3: its own encoder for the 2stage-NoSiam ablation.
        self.prior_encoder = None if config.siamese or not config.two_stage else make_trunk(config.backbone, in_channels=4)
        self.normalization = normalization(config.backbone)
        r2_channels, r3_channels, r4_channels = self.query_encoder.channels

        def aggregation() -> QueryMemoryAggregation:
            return QueryMemoryAggregation(
                r4_channels,
                config.key_channels,
                config.value_channels,
                config.key_value_kernel_size,
                use_memory_read=config.uses_memory_read,
                use_bca=config.uses_bca,
                bca_reduction=config.bca_reduction,
            )

        def decoder() -> Decoder:
            return Decoder(2 * config.value_channels, r3_channels, r2_channels, config.decoder_channels)

        self.track_aggregation = aggregation()
        self.track_decoder = decoder()
        self.segment_aggregation = aggregation() if config.two_stage else None
        self.segment_decoder = decoder() if config.two_stage else None
        self.crm = (
            CascadedRefinementModule(2 * config.value_channels, r3_channels, r2_channels, config.decoder_channels, config.crm_coordinates)
            if config.uses_crm
            else None
        )
        self.batchnorm_frozen = False
        self.freeze_batchnorm(config.freeze_batchnorm)

    # ------------------------------------------------------------------ set-up

    def freeze_batchnorm(self, frozen: bool = True) -> None:
        """Keep every BatchNorm's statistics and affine parameters fixed (``True``) or train them."""
        self.batchnorm_frozen = frozen
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.requires_grad_(not frozen)
                module.bias.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "QMRA":
        super().train(mode)
        if self.batchnorm_frozen:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def load_backbone_weights(self, source: str | Path | Mapping[str, torch.Tensor]) -> "BackboneLoadReport":
        """Load the backbone's ImageNet state dict (file or mapping) into every encoder; see :mod:`qmra.model.weights`."""
        return load_backbone_weights(self.encoders(), source)

    def encoders(self) -> dict[str, Trunk]:
        encoders = {"query_encoder": self.query_encoder}
        if self.memory_encoder is not None:
            encoders["memory_encoder"] = self.memory_encoder
        if self.prior_encoder is not None:
            encoders["prior_encoder"] = self.prior_encoder
        return encoders

    # ------------------------------------------------------------------ per-frame parts

    def prepare(self, image: torch.Tensor, padding: Padding | None = None) -> tuple[torch.Tensor, Padding]:
        """RGB in [0, 1], ...×3×H×W → normalised as the backbone expects, padded to multiples of 16, and
        the :class:`Padding` (``padding``, when given, must be for this size)."""
        padding = padding or Padding.for_size(image.shape[-2], image.shape[-1])
        return prepare_image(image, padding, self.normalization), padding

    def encode_query(self, image: torch.Tensor) -> BackboneFeatures:
        """fq: prepared image B×3×H'×W' → features. Does not depend on the object: share it."""
        _check_padded(image)
        with record_function("qmra/encoders"):
            return self.query_encoder(image)

    def encode_memory(self, image: torch.Tensor, box_map: torch.Tensor,
                      query_features: BackboneFeatures | None = None) -> BackboneFeatures:
        """fm: prepared image B×3×H'×W' (or 1×3×H'×W', shared) and box map B×1×H'×W' in [0, 1] → features.
        ``query_features``: ``encode_query(image)`` if already made (a shared memory encoder reuses it)."""
        _check_padded(image)
        if self.box_fusion is not None:
            features = query_features if query_features is not None else self.encode_query(image)
            with record_function("qmra/encoders"):
                return self.box_fusion(features, box_map)
        assert self.memory_encoder is not None
        with record_function("qmra/encoders"):
            return self.memory_encoder(torch.cat([image.expand(box_map.shape[0], -1, -1, -1), box_map.to(image.dtype)], dim=1))

    def memorize(self, features: BackboneFeatures, read: ReadMode = ReadMode()) -> MemoryFrame:
        """Memory-encoder features of one frame → its keys and values for both stages (B×C×h×w),
        for reading with ``read`` (which decides whether values or features are kept:
        :meth:`QueryMemoryAggregation.keeps_features`)."""
        with record_function("qmra/memory_read"):
            track = self.track_aggregation.project_memory(features.r4, read)
            segment = (None if self.segment_aggregation is None
                       else self.segment_aggregation.project_memory(features.r4, read))
        return MemoryFrame(track, segment)

    def predict(self, image: torch.Tensor, padding: Padding, memory: Memory, query_features: BackboneFeatures | None = None,
                query_prior: torch.Tensor | None = None, read: ReadMode = ReadMode(),
                folded_crm: FoldedCRMInput | None = None, stage2_box: str = "all") -> QMRAOutput:
        """Predict one query frame for B objects: :meth:`track`, then :meth:`segment` (with the CRM).

        image: prepared query 1×3×H'×W' (shared by all objects) or B×3×H'×W'; padding: from
        :meth:`prepare`; memory: B objects' T frames; query_features: ``encode_query(image)`` if
        already computed (it is shared by every object of a frame); query_prior: B×1×H×W to use
        instead of stage 1's box (the true box in training); read: the Memory Read's kernel and
        top-k (:class:`qmra.model.qma.ReadMode`); folded_crm: ``self.crm.fold()`` made once for many
        frames, or None; stage2_box: what stage 2's box surrounds (:data:`qmra.model.prior.STAGE2_BOXES`:
        all of stage 1's p > threshold, the paper, or its largest blob). Returns logits at the
        unpadded size H×W.
        """
        if query_features is None:
            query_features = self.encode_query(image)
        track = self.track(query_features, memory, read)
        if not self.config.two_stage:
            return QMRAOutput(mask_logits=padding.crop(track.logits))
        if query_prior is None:
            query_prior = self.stage2_prior(track, padding, stage2_box)
        elif query_prior.shape != (memory.batch_size, 1, padding.height, padding.width):
            raise ValueError(f"query_prior must be {memory.batch_size}x1x{padding.height}x{padding.width}, "
                             f"got {tuple(query_prior.shape)}")
        encoding = None if self.box_fusion is None else self.encode_prior(image, padding, query_prior, query_features)
        return self.segment(image, padding, memory, track, query_prior, encoding, read=read, folded_crm=folded_crm)

    def start(self, image: torch.Tensor, padding: Padding, box_maps: torch.Tensor, query_features: BackboneFeatures | None = None,
              read: ReadMode = ReadMode(), folded_crm: FoldedCRMInput | None = None) -> tuple[MemoryFrame, QMRAOutput]:
        """An object's first frame: its memory entry ``fm(I, box)`` and its prediction given its box.

        box_maps: B×1×H×W, the users' boxes at the unpadded size. With the siamese stage-2 encoder the
        box's stage-2 encoding *is* its memory encoding, so it is computed once.
        """
        if query_features is None:
            query_features = self.encode_query(image)
        encoding = self.encode_prior(image, padding, box_maps, query_features)
        # The prior is the box itself here, so its encoding is fm(I, box) unless stage 2 has its own encoder.
        entry = self.memorize(encoding if self.prior_encoder is None else self.encode_memory(image, padding.pad(box_maps)),
                              read)
        memory = Memory.stack([entry])
        track = self.track(query_features, memory, read)
        if not self.config.two_stage:
            return entry, QMRAOutput(mask_logits=padding.crop(track.logits))
        return entry, self.segment(image, padding, memory, track, box_maps, encoding, read, folded_crm)

    def track(self, query_features: BackboneFeatures, memory: Memory, read: ReadMode = ReadMode()) -> Stage:
        """Stage 1: the query's features read against the memory's stage-1 keys, decoded to the box
        map (a mask for ``2stage-noalign``; the only prediction for ``1stage``)."""
        with record_function("qmra/memory_read"):
            aggregated = self.track_aggregation(query_features.r4, memory.track, read)
        with record_function("qmra/decoders"):
            return Stage(aggregated, self.track_decoder(aggregated, query_features.r3, query_features.r2))

    def stage2_prior(self, track: Stage, padding: Padding, box: str = "all") -> torch.Tensor:
        """B×1×H×W prior Mq for stage 2: the filled rectangle around stage 1's p > threshold, or
        around its largest blob (``box``, see :func:`qmra.model.prior.rectangle_prior`); its
        thresholded mask for ``2stage-noalign``."""
        probability = torch.softmax(padding.crop(track.logits), dim=1)[:, 1:2].detach()
        if self.config.stage1_predicts_box:
            return rectangle_prior(probability, self.config.prior_threshold, box)
        return mask_prior(probability, self.config.prior_threshold)

    def encode_prior(self, image: torch.Tensor, padding: Padding, prior: torch.Tensor,
                     query_features: BackboneFeatures | None = None) -> BackboneFeatures:
        """Stage 2's encoding of the query with its prior, B×1×H×W: the memory encoder (siamese) or
        the ``2stage-nosiam`` prior encoder; the RGB part of conv1 once for all objects of a frame.
        A shared memory encoder joins the prior to ``query_features`` (made here when not given)."""
        if not self.config.two_stage or self.box_fusion is not None:
            return self.encode_memory(image, padding.pad(prior), query_features)
        padded_prior = padding.pad(prior).to(image.dtype)
        encoder = self.memory_encoder if self.prior_encoder is None else self.prior_encoder
        assert encoder is not None
        with record_function("qmra/encoders"):
            if image.shape[0] == 1 and prior.shape[0] > 1:
                return encoder.forward_shared_image(image, padded_prior)
            return encoder(torch.cat([image.expand(prior.shape[0], -1, -1, -1), padded_prior], dim=1))

    def memory_entry(self, image: torch.Tensor, padding: Padding, box_maps: torch.Tensor,
                     output: QMRAOutput | None = None, read: ReadMode = ReadMode()) -> MemoryFrame:
        """The memory entry of a frame with B objects' box maps (B×1×H×W, usually
        :meth:`tracked_box_maps`): ``fm(I, box)`` made into keys and values for reading with
        ``read``. ``output``: the frame's prediction, whose stage-2 encoding is reused where it is
        exactly ``fm(I, box)``."""
        if output is not None and output.query_encoding is not None and self.config.stage2_encoding_is_memory:
            return self.memorize(output.query_encoding, read)
        return self.memorize(self.encode_memory(image, padding.pad(box_maps)), read)

    def segment(self, image: torch.Tensor, padding: Padding, memory: Memory, track: Stage, prior: torch.Tensor,
                encoding: BackboneFeatures | None = None, read: ReadMode = ReadMode(),
                folded_crm: FoldedCRMInput | None = None) -> QMRAOutput:
        """Stage 2 and the CRM: the query re-encoded with its prior (B×1×H×W; ``encoding`` if already
        made by :meth:`encode_prior`), read against the memory's stage-2 keys, decoded to the mask Sq,
        then refined from both stages by the CRM."""
        if encoding is None:
            encoding = self.encode_prior(image, padding, prior)
        assert self.segment_aggregation is not None and self.segment_decoder is not None and memory.segment is not None
        with record_function("qmra/memory_read"):
            aggregated = self.segment_aggregation(encoding.r4, memory.segment, read)
        with record_function("qmra/decoders"):
            segment = Stage(aggregated, self.segment_decoder(aggregated, encoding.r3, encoding.r2))
        refined = self.refine(track, segment, encoding, folded_crm)
        return QMRAOutput(
            mask_logits=padding.crop(segment.logits),
            track_logits=padding.crop(track.logits),
            refined_logits=None if refined is None else padding.crop(refined),
            query_prior=prior,
            query_encoding=encoding,
            track_target="box" if self.config.stage1_predicts_box else "mask",
        )

    def refine(self, track: Stage, segment: Stage, encoding: BackboneFeatures,
               folded_crm: FoldedCRMInput | None = None) -> torch.Tensor | None:
        """The CRM: both stages' aggregated features and probabilities, with the stage-2 encoder's
        r3 and r2, → refined logits B×2×H'×W' (padded); None for variants without a CRM."""
        if self.crm is None:
            return None
        with record_function("qmra/crm"):
            return self.crm(track.aggregated, segment.aggregated, torch.softmax(track.logits, dim=1)[:, 1:2],
                            torch.softmax(segment.logits, dim=1)[:, 1:2], encoding.r3, encoding.r2, folded=folded_crm)

    def tracked_box_maps(self, output: QMRAOutput) -> torch.Tensor:
        """B×1×H×W filled boxes of a predicted frame, for its memory entry: the stage-1 box prior
        where the variant has one, else the tight box of the final mask."""
        if self.config.two_stage and self.config.stage1_predicts_box:
            assert output.query_prior is not None
            return output.query_prior
        return rectangle_prior(output.probability(), self.config.prior_threshold)

    # ------------------------------------------------------------------ training forward

    def build_memory(self, images: torch.Tensor, box_maps: torch.Tensor, padding: Padding) -> Memory:
        """Encode T memory frames at once: images B×T×3×H×W in [0, 1], box maps B×T×1×H×W → Memory."""
        batch, frames = images.shape[:2]
        prepared, _ = self.prepare(images.flatten(0, 1), padding)
        features = self.encode_memory(prepared, padding.pad(box_maps.flatten(0, 1)))
        flat = self.memorize(features)

        def tokens(maps: KeyValueMaps) -> MemoryTokens:
            key = None if maps.key is None else maps.key.unflatten(0, (batch, frames))
            return MemoryTokens.from_maps(key, maps.value.unflatten(0, (batch, frames)))

        h, w = flat.track.value.shape[-2:]
        return Memory(tokens(flat.track), None if flat.segment is None else tokens(flat.segment), h * w)

    def forward(
        self,
        memory_images: torch.Tensor,
        memory_box_maps: torch.Tensor,
        query_image: torch.Tensor,
        query_prior: torch.Tensor | None = None,
    ) -> QMRAOutput:
        """memory_images B×T×3×H×W (RGB in [0, 1]), memory_box_maps B×T×1×H×W, query_image B×3×H×W.

        Any H×W: inputs are padded to multiples of 16 and the logits cropped back.
        """
        if memory_images.dim() != 5 or memory_images.shape[2] != 3:
            raise ValueError(f"memory_images must be B×T×3×H×W, got {tuple(memory_images.shape)}")
        batch, frames, _, height, width = memory_images.shape
        if memory_box_maps.shape != (batch, frames, 1, height, width):
            raise ValueError(f"memory_box_maps must be {batch}x{frames}x1x{height}x{width}, got {tuple(memory_box_maps.shape)}")
        if query_image.shape != (batch, 3, height, width):
            raise ValueError(f"query_image must be {batch}x3x{height}x{width}, got {tuple(query_image.shape)}")
        padding = Padding.for_size(height, width)
        memory = self.build_memory(memory_images, memory_box_maps, padding)
        return self.predict(self.prepare(query_image, padding)[0], padding, memory, query_prior=query_prior)


def _check_padded(image: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[-2] % STRIDE or image.shape[-1] % STRIDE:
        raise ValueError(f"expected a prepared B×C×H×W image with H, W multiples of {STRIDE}, got {tuple(image.shape)}")

