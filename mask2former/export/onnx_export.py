"""Trace `ExportableMask2Former` to ONNX, check the graph is float32, and compare it with PyTorch.

The TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`) is used: the torch.export-based
one needs the `onnxscript` package, which this project does not depend on, and the traced graph of this
model has no data-dependent control flow (every shape is a Python int at the export resolution).

Batch: `batch_size=-1` marks the batch dimension of the input and of every output dynamic; the graph is
then verified with a batch of 2, so a graph that only pretends to be dynamic is caught here. A fixed
`batch_size=N` exports and verifies with N.

Verification (`verify_onnx`): ONNX Runtime (CPU) against the same PyTorch module on seeded random
images. Rule per output (tolerance `tolerance`, 1e-3 by default, on values that are probabilities or
scores in [0, 1]):
  * float outputs: max |ORT - PyTorch| <= tolerance; instance `pred_scores` are compared per image as
    sorted lists (two nearly equal candidates may swap places);
  * `pred_classes` and instance `pred_masks`: exact, except where the PyTorch ranking has a near tie
    (neighbouring top-k probabilities, or the best two class probabilities of a panoptic query, within
    `tolerance`); the instance masks may additionally differ on at most `MASK_FLIP_FRACTION` of the
    pixels (logits within float error of 0).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mask2former.export.graph_checks import GraphReport, inspect_graph, write_metadata
from mask2former.export.heads import INPUT_NAME, MODES, ExportableMask2Former, output_names, output_shapes
from skillkit.errors import HpoError, SpecError

DEFAULT_TOLERANCE = 1e-3
MASK_FLIP_FRACTION = 1e-3
MIN_OPSET = 16  # GridSample (deformable attention) exists from opset 16
RAW_OUTPUT_NAMES = ("raw_pred_logits", "raw_pred_masks")


class ExportError(HpoError):
    """The model could not be exported (an internal problem, not a spec mistake)."""


class VerificationError(HpoError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance, or the graph is not float32."""


@dataclass(frozen=True)
class ExportSettings:
    """What to export: `mode`'s outputs at `height` x `width`; `batch_size` -1 = dynamic batch."""

    mode: str
    height: int
    width: int
    batch_size: int = -1
    opset: int = 17
    topk: int = 100
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpecError(f"model.mode={self.mode!r} cannot be exported; use one of {', '.join(MODES)}.")
        if self.opset < MIN_OPSET:
            raise SpecError(f"export.opset_version={self.opset} is too old: the deformable attention exports as "
                            f"GridSample, which needs opset >= {MIN_OPSET} (17 is the default).")
        if self.batch_size == 0 or self.batch_size < -1:
            raise SpecError(f"export.batch_size={self.batch_size}: use -1 (dynamic batch) or a batch size >= 1.")
        if self.height < 32 or self.width < 32:
            raise SpecError(f"export.input_height x input_width = {self.height} x {self.width}: both must be >= 32.")

    @property
    def dynamic_batch(self) -> bool:
        return self.batch_size == -1


@dataclass(frozen=True)
class Verification:
    """ORT vs PyTorch on `batch` seeded random images; see the module docstring for the rules."""

    batch: int
    tolerance: float
    max_abs_diff: dict[str, float]
    mismatches: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "tolerance": self.tolerance, "max_abs_diff": dict(self.max_abs_diff),
                "mismatches": dict(self.mismatches), "passed": self.passed, "problems": list(self.problems)}


@dataclass(frozen=True)
class ExportResult:
    onnx_file: Path
    metadata: dict[str, Any]
    graph: GraphReport
    verification: Verification


def feature_map_sizes(height: int, width: int, strides: Sequence[int]) -> dict[int, tuple[int, int]]:
    """stride -> (h, w) of the backbone feature map (the patch embedding pads, so sizes round up)."""
    return {int(s): (math.ceil(height / s), math.ceil(width / s)) for s in strides}


def _strides(model: nn.Module) -> list[int]:
    backbone = getattr(model, "backbone", None)
    return sorted(getattr(backbone, "output_strides", {"res5": 32}).values())


def _size_explanation(model: nn.Module, settings: ExportSettings, error: BaseException) -> str:
    sizes = feature_map_sizes(settings.height, settings.width, _strides(model))
    listing = ", ".join(f"stride {s}: {h}x{w}" for s, (h, w) in sizes.items())
    window = getattr(getattr(model, "backbone", None), "layers", None)
    window_size = None
    if window is not None and len(window) and hasattr(window[0], "window_size"):
        window_size = int(window[0].window_size)
    window_note = f" (the Swin window is {window_size}x{window_size})" if window_size else ""
    return (f"export at export.input_height x input_width = {settings.height} x {settings.width} failed: the "
            f"backbone feature maps are {listing}{window_note}. At this size the coarsest maps hold too few "
            f"values for the exporter (GroupNorm needs more than one value per group, and ONNX shape inference "
            f"of the padded windows breaks on 1-pixel maps). Use an export size whose coarsest feature map is at "
            f"least 2x2, i.e. input_height and input_width >= 64 (multiples of 32 are best; 960 x 544 is the "
            f"default). Exporter message: {type(error).__name__}: {str(error)[:300]}")


def export_onnx(
    model: nn.Module,
    onnx_file: str | os.PathLike[str],
    settings: ExportSettings,
    *,
    metadata: Mapping[str, Any] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    device: torch.device | str = "cpu",
    verify: bool = True,
    seed: int = 0,
) -> ExportResult:
    """Export `model` (a Mask2Former module, eval mode) with its `settings.mode` post-processing.

    Writes `onnx_file` (float32; metadata under `mask2former.export`), refuses graphs with float64 tensors
    or non-float32 GridSample grids, and (unless `verify=False`) compares ONNX Runtime with PyTorch.
    Raises SpecError for unexportable sizes/settings, ExportError for other exporter failures and
    VerificationError when a check fails (the file stays on disk for inspection).
    """
    onnx_file = Path(onnx_file)
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    wrapper = ExportableMask2Former(model, mode=settings.mode, output_size=(settings.height, settings.width),
                                    topk=settings.topk, raw_outputs=True).eval().to(device)
    names = list(output_names(settings.mode)) + list(RAW_OUTPUT_NAMES)
    example_batch = 1 if settings.dynamic_batch else settings.batch_size
    dummy = torch.rand(example_batch, 3, settings.height, settings.width, generator=torch.Generator().manual_seed(seed))
    dynamic_axes = None
    if settings.dynamic_batch:
        dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *names]}
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet(not settings.verbose):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (dummy.to(device),), str(onnx_file), dynamo=False, input_names=[INPUT_NAME],
                output_names=names, dynamic_axes=dynamic_axes, opset_version=settings.opset,
                do_constant_folding=True, verbose=settings.verbose,
            )
    except Exception as error:  # noqa: BLE001 - every exporter failure is explained below
        smallest = min(min(hw) for hw in feature_map_sizes(settings.height, settings.width, _strides(model)).values())
        if smallest < 2:
            raise SpecError(_size_explanation(model, settings, error)) from error
        raise ExportError(f"torch.onnx.export failed for mode {settings.mode} at {settings.height}x{settings.width}, "
                          f"opset {settings.opset}: {type(error).__name__}: {error}") from error

    try:
        graph = inspect_graph(onnx_file)
    except Exception as error:  # noqa: BLE001 - shape inference failures on tiny sizes are the known trap
        raise SpecError(_size_explanation(model, settings, error)) from error
    if not graph.is_float32:
        raise VerificationError(
            f"the exported graph {onnx_file} is not float32: float64 tensors {list(graph.float64)[:10]}, "
            f"GridSample grid dtypes {[d for _, d in graph.grid_sample_grids]}. Deploy runtimes need a float32 graph.")

    info = export_metadata(model, settings)
    info.update(dict(metadata or {}))
    if verify:
        verification = verify_onnx(onnx_file, wrapper, batch=2 if settings.dynamic_batch else settings.batch_size,
                                   settings=settings, tolerance=tolerance, seed=seed + 1, device=device)
    else:
        verification = Verification(batch=0, tolerance=tolerance, max_abs_diff={}, problems=())
    info["verification"] = verification.as_dict()
    write_metadata(onnx_file, info)
    if not verification.passed:
        raise VerificationError(
            f"ONNX Runtime and PyTorch disagree on {onnx_file} (batch {verification.batch}, tolerance "
            f"{tolerance}): {'; '.join(verification.problems)}")
    return ExportResult(onnx_file=onnx_file, metadata=info, graph=graph, verification=verification)


def export_metadata(model: nn.Module, settings: ExportSettings) -> dict[str, Any]:
    """What the deploy side needs to read the graph without the spec (stored in the ONNX file)."""
    num_classes = int(model.num_classes)
    num_queries = int(model.num_queries)
    shapes = output_shapes(settings.mode, num_classes=num_classes, num_queries=num_queries, topk=settings.topk,
                           height=settings.height, width=settings.width,
                           batch="batch" if settings.dynamic_batch else settings.batch_size)
    return {
        "format": "mask2former-onnx/1",
        "mode": settings.mode,
        "num_classes": num_classes,
        "num_queries": num_queries,
        "topk": min(settings.topk, num_queries * num_classes),
        "input_name": INPUT_NAME,
        "input_shape": ["batch" if settings.dynamic_batch else settings.batch_size, 3, settings.height, settings.width],
        "input_height": settings.height,
        "input_width": settings.width,
        "dynamic_batch": settings.dynamic_batch,
        "opset": settings.opset,
        "outputs": {name: {"shape": shape, "dtype": dtype} for name, (shape, dtype) in shapes.items()},
        "raw_outputs": list(RAW_OUTPUT_NAMES),
    }


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Silence the exporter's stdout chatter (TorchScript diagnostics) unless verbose export is asked for."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def run_onnxruntime(onnx_file: str | os.PathLike[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs of the graph on `images` (float32 [B, 3, H, W]) with ONNX Runtime on CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    values = session.run(None, {session.get_inputs()[0].name: images.astype(np.float32, copy=False)})
    return {out.name: value for out, value in zip(session.get_outputs(), values)}


def verify_onnx(
    onnx_file: str | os.PathLike[str],
    wrapper: ExportableMask2Former,
    *,
    batch: int,
    settings: ExportSettings,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 1,
    device: torch.device | str = "cpu",
) -> Verification:
    """Compare ONNX Runtime with `wrapper` on `batch` seeded random images (rules: module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, settings.height, settings.width, generator=generator)
    with torch.no_grad():
        reference = [t.detach().cpu() for t in wrapper(images.to(device))]
    names = list(output_names(settings.mode)) + list(RAW_OUTPUT_NAMES)
    expected = dict(zip(names, reference))
    class_probs = expected[RAW_OUTPUT_NAMES[0]].float().softmax(-1)
    try:
        actual = {k: torch.from_numpy(v) for k, v in run_onnxruntime(onnx_file, images.numpy()).items()}
    except Exception as error:  # noqa: BLE001 - a graph ORT cannot run fails verification
        hint = (" The graph does not run with a batch other than the traced one: export with a fixed batch "
                "(export.batch_size=N) instead of -1." if settings.dynamic_batch else "")
        return Verification(batch=batch, tolerance=tolerance, max_abs_diff={},
                            problems=(f"ONNX Runtime could not run the graph with batch {batch}: "
                                      f"{type(error).__name__}: {str(error)[:400]}.{hint}",))
    return compare_outputs(expected, actual, mode=settings.mode, class_probs=class_probs, tolerance=tolerance,
                           batch=batch)


def compare_outputs(
    expected: Mapping[str, torch.Tensor],
    actual: Mapping[str, torch.Tensor],
    *,
    mode: str,
    class_probs: torch.Tensor,
    tolerance: float,
    batch: int,
) -> Verification:
    """Apply the per-output rules of the module docstring; `class_probs` are PyTorch's [B, Q, K+1]."""
    problems: list[str] = []
    diffs: dict[str, float] = {}
    mismatches: dict[str, int] = {}
    for name, ref in expected.items():
        got = actual.get(name)
        if got is None:
            problems.append(f"output {name} is missing from the graph")
            continue
        if tuple(got.shape) != tuple(ref.shape):
            problems.append(f"{name}: shape {tuple(got.shape)} != PyTorch {tuple(ref.shape)}")
    if problems:
        return Verification(batch=batch, tolerance=tolerance, max_abs_diff=diffs, problems=tuple(problems))

    def check_float(name: str, ref: torch.Tensor, got: torch.Tensor, limit: float) -> None:
        diff = float((got.float() - ref.float()).abs().max()) if ref.numel() else 0.0
        diffs[name] = diff
        if not diff <= limit:
            problems.append(f"{name}: max abs difference {diff:.3g} > {limit:g}")

    if mode == "instance":
        ranked = class_probs[..., :-1].flatten(1).sort(dim=1, descending=True).values[:, : expected["pred_scores"].shape[1]]
        tied = _near_ties(ranked, tolerance)  # [B, T]
        check_float("pred_scores", expected["pred_scores"].sort(dim=1).values, actual["pred_scores"].sort(dim=1).values,
                    tolerance)
        same_class = expected["pred_classes"] == actual["pred_classes"]
        bad_class = (~same_class) & ~tied
        mismatches["pred_classes"] = int((~same_class).sum())
        if bad_class.any():
            problems.append(f"pred_classes differ at {int(bad_class.sum())} ranks without a near tie")
        comparable = same_class & ~tied  # [B, T]
        flips = (expected["pred_masks"] != actual["pred_masks"])[comparable]
        mismatches["pred_masks"] = int(flips.sum())
        diffs["pred_masks"] = float(flips.float().mean()) if flips.numel() else 0.0
        if flips.numel() and float(flips.float().mean()) > MASK_FLIP_FRACTION:
            problems.append(f"pred_masks: {float(flips.float().mean()):.2%} of compared pixels differ "
                            f"(> {MASK_FLIP_FRACTION:.2%})")
    elif mode == "panoptic":
        for name in ("prob_masks", "pred_masks", "pred_scores"):
            check_float(name, expected[name], actual[name], tolerance)
        top2 = class_probs.topk(2, dim=-1).values
        tied = (top2[..., 0] - top2[..., 1]) <= tolerance
        differ = expected["pred_classes"] != actual["pred_classes"]
        mismatches["pred_classes"] = int(differ.sum())
        if (differ & ~tied).any():
            problems.append(f"pred_classes differ on {int((differ & ~tied).sum())} queries without a near tie")
    else:
        check_float("pred_masks", expected["pred_masks"], actual["pred_masks"], tolerance)
    # Raw outputs: class logits and low-resolution mask logits (not probabilities: scale the tolerance).
    for name in RAW_OUTPUT_NAMES:
        ref = expected[name]
        scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
        check_float(name, ref, actual[name], tolerance * scale)
    return Verification(batch=batch, tolerance=tolerance, max_abs_diff=diffs, mismatches=mismatches,
                        problems=tuple(problems))


def _near_ties(sorted_desc: torch.Tensor, tolerance: float) -> torch.Tensor:
    """[B, T] descending values -> True where a neighbour is within `tolerance` (rank may swap)."""
    gaps = (sorted_desc[:, :-1] - sorted_desc[:, 1:]).abs() <= tolerance  # [B, T-1]
    tied = torch.zeros_like(sorted_desc, dtype=torch.bool)
    tied[:, :-1] |= gaps
    tied[:, 1:] |= gaps
    return tied
