"""Static checks of an exported ONNX graph, and the metadata the deploy side reads back.

Why: TensorRT and ONNX Runtime run float64 nodes slowly or not at all, and deformable attention is
only fast when its `GridSample` grids stay float32. A graph that silently picked up a float64 tensor
(a Python float promoted by tracing, a `torch.float64` `linspace`) must be refused at export time,
not discovered on the deploy machine. The checks run on the shape-inferred graph, so intermediate
tensors are covered, not only inputs and outputs.

Metadata: the graph carries `mask2former.*` entries in `metadata_props` (mode, classes, input size,
output names...), so an ONNX file (and an engine built from it, via a sidecar JSON) can be decoded
without the spec that exported it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

METADATA_KEY = "mask2former.export"


@dataclass(frozen=True)
class GraphReport:
    """What the float32 check found.

    float64: names of float64 tensors (inputs, outputs, initializers, intermediates, casts, constants);
    grid_sample_grids: (node name, grid dtype name) of every GridSample node;
    op_types: sorted distinct operator types in the graph.
    """

    float64: tuple[str, ...]
    grid_sample_grids: tuple[tuple[str, str], ...]
    op_types: tuple[str, ...]

    @property
    def is_float32(self) -> bool:
        return not self.float64 and all(dtype == "FLOAT" for _, dtype in self.grid_sample_grids)


def _dtype_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def inspect_graph(model: onnx.ModelProto | str | os.PathLike[str]) -> GraphReport:
    """Shape-infer the graph and report float64 tensors and GridSample grid dtypes."""
    proto = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model
    inferred = onnx.shape_inference.infer_shapes(proto)
    graph = inferred.graph
    dtypes: dict[str, int] = {}
    for info in list(graph.input) + list(graph.output) + list(graph.value_info):
        if info.type.HasField("tensor_type"):
            dtypes[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        dtypes[init.name] = init.data_type
    float64 = {name for name, elem in dtypes.items() if elem == TensorProto.DOUBLE}
    grids: list[tuple[str, str]] = []
    for node in graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.DOUBLE:
                    float64.add(f"{node.name or node.output[0]} (Cast to double)")
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.DOUBLE:
                    float64.add(f"{node.output[0]} (double Constant)")
        if node.op_type == "GridSample":
            grid = node.input[1]
            grids.append((node.name or node.output[0], _dtype_name(dtypes.get(grid, TensorProto.UNDEFINED))))
    return GraphReport(
        float64=tuple(sorted(float64)),
        grid_sample_grids=tuple(grids),
        op_types=tuple(sorted({node.op_type for node in graph.node})),
    )


def write_metadata(path: str | os.PathLike[str], metadata: Mapping[str, Any]) -> None:
    """Store `metadata` (JSON) in the ONNX file's metadata_props under `mask2former.export`."""
    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(dict(metadata), sort_keys=True)
    onnx.save(proto, str(path))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The `mask2former.export` metadata of an ONNX file, or None when it has none."""
    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    """Where an engine's (or quantized model's) metadata JSON lives: `<file>.json` beside it."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")
