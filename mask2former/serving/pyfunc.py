"""The promoted checkpoint as an MLflow pyfunc model: `mlflow.pyfunc.load_model(...)` and `mlflow models serve`.

Where it lives and why: the model wrapper belongs to the trainer (it rebuilds the network and runs its
post-processing), and the engine must not import the trainer. So the skill packages the model itself
(`mask2former mlflow_model -e inference_spec.yaml --output DIR`, declared as `x_mlflow_model` in
references/skill_info.yaml) and the engine only uploads the folder, registers it and moves the alias.

The model folder (a standard MLflow model, flavour `python_function`):
    MLmodel, python_model.pkl, requirements.txt, ...    MLflow's files, with the signature and input example
    artifacts/<checkpoint>.pth                          the exact promoted checkpoint (its embedded spec holds the
                                                        model arguments the network is rebuilt with)
    artifacts/inference_spec.yaml                       post-processing settings: mode, thresholds, test size
    artifacts/<label map>.json                          category ids, names, colours of the outputs

Input: a DataFrame with a binary column `image` (the bytes of a PNG/JPEG file; base64 in a REST request) and
an optional string column `file_name`. Output: one record per image, the same values `mask2former inference`
writes for it (`mask2former.actions.outputs.ImagePrediction.to_json`):
    image_id, file_name, height, width,
    semantic        [H][W] raw category ids                          (every mode)
    panoptic        [H][W] segment ids, segments_info [...]          (panoptic mode)
    instances       [{category_id, score, bbox, segmentation RLE}]   (instance mode)
Predictions are made one image at a time, as the CLI does with `inference.batch_size: 1`.

Serving needs this project installed where the model is loaded (`--env-manager local`, or an environment
with the `mask2former-hpo` package): the pickled wrapper refers to `mask2former.serving.pyfunc` by name.
"""

from __future__ import annotations

import base64
import copy
import io
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

CHECKPOINT = "checkpoint"
SPEC = "inference_spec"
LABEL_MAP = "label_map"
OUTPUT_KEYS = ("image_id", "file_name", "height", "width", "semantic", "panoptic", "segments_info", "instances")


def decode_image(value: Any) -> np.ndarray:
    """PNG/JPEG bytes (or their base64 text) -> uint8 [H, W, 3] RGB, read as the trainer reads image files."""
    from PIL import Image, ImageOps

    if isinstance(value, str):
        value = base64.b64decode(value)
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"column 'image' must hold the bytes of an image file, got {type(value).__name__}")
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(bytes(value))))
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


class Mask2FormerModel(mlflow.pyfunc.PythonModel):
    """Loads the promoted checkpoint with its model arguments and predicts the mode's outputs."""

    def load_context(self, context: Any) -> None:
        from mask2former.actions.inference import Predictor
        from mask2former.config import config_from_dict
        from skillkit.spec import load_spec

        overrides = [f"inference.checkpoint={context.artifacts[CHECKPOINT]}", "inference.batch_size=1",
                     "dataset.test.num_workers=0"]
        if LABEL_MAP in context.artifacts:
            overrides.append(f"dataset.label_map={context.artifacts[LABEL_MAP]}")
        spec = load_spec(context.artifacts[SPEC], action="inference", overrides=overrides)
        self.predictor = Predictor(config_from_dict(spec))

    def predict(self, context, model_input: pd.DataFrame, params=None):
        """One output record per input row (see the module docstring).

        Only `model_input` is annotated, and as a DataFrame: MLflow infers no schema from that hint (the
        signature `package` writes stays the contract) and stops asking for type hints on every import."""
        from mask2former.actions.inference import ImageArrays
        from mask2former.actions.outputs import predict_image

        rows = model_input.to_dict(orient="records") if hasattr(model_input, "to_dict") else list(model_input)
        images = [decode_image(row["image"]) for row in rows]
        names = [str(row.get("file_name") or f"image_{index}.png") for index, row in enumerate(rows)]
        dataset = ImageArrays(images, names, self.predictor.transforms)
        predictor = self.predictor
        return [predict_image(meta, result, mode=predictor.mode, categories=predictor.categories).to_json()
                for meta, result in predictor.run(dataset, batch_size=1)]


def signature() -> Any:
    """Input and output schema; the output names every key a record of any mode may hold (see the module
    docstring), the mode-specific ones optional, so a client can read the model's whole contract from MLmodel."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

    bbox = Property("bbox", Array("double"))  # COCO [x, y, width, height]
    segment = Object([Property("id", "long"), Property("category_id", "long"), Property("isthing", "boolean"),
                      Property("score", "double"), Property("area", "long"), bbox])
    rle = Object([Property("size", Array("long")), Property("counts", "string")])  # COCO RLE of one mask
    instance = Object([Property("image_id", "long"), Property("file_name", "string"),
                       Property("category_id", "long"), Property("score", "double"), bbox,
                       Property("segmentation", rle)])
    inputs = Schema([ColSpec("binary", "image"), ColSpec("string", "file_name", required=False)])
    outputs = Schema([
        ColSpec("long", "image_id"), ColSpec("string", "file_name"), ColSpec("long", "height"),
        ColSpec("long", "width"), ColSpec(Array(Array("long")), "semantic"),
        ColSpec(Array(Array("long")), "panoptic", required=False),
        ColSpec(Array(segment), "segments_info", required=False),
        ColSpec(Array(instance), "instances", required=False),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _example_image(height: int, width: int) -> bytes:
    """A small deterministic PNG for the input example (a gradient with a square)."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, 96)], axis=-1)
    rgb[height // 4: height // 2, width // 4: width // 2] = (220, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in ("mlflow", "torch", "numpy", "pillow", "pycocotools", "pyyaml", "jsonschema", "scipy", "pandas"):
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pinned


def package(spec: Mapping[str, Any], output: Path) -> Path:
    """Write the MLflow model of `spec`'s `inference.checkpoint` into `output` (replaced if present)."""
    import tempfile

    import yaml

    from skillkit.errors import SpecError

    checkpoint = Path(str(spec.get("inference", {}).get("checkpoint") or ""))
    if not checkpoint.is_file():
        raise SpecError(f"inference.checkpoint '{checkpoint}' is not a file: the MLflow model packages that checkpoint.")
    kept = copy.deepcopy(dict(spec))
    kept.pop("encryption_key", None)
    with tempfile.TemporaryDirectory() as scratch:
        spec_file = Path(scratch) / "inference_spec.yaml"
        spec_file.write_text(yaml.safe_dump(kept, sort_keys=False))
        artifacts = {CHECKPOINT: str(checkpoint), SPEC: str(spec_file)}
        label_map = str((spec.get("dataset") or {}).get("label_map") or "")
        if label_map and Path(label_map).is_file():
            artifacts[LABEL_MAP] = label_map
        augmentation = (spec.get("dataset") or {}).get("augmentation") or {}
        side = int(augmentation.get("test_min_size") or 64)
        example = pd.DataFrame({"image": [_example_image(side, side)], "file_name": ["example.png"]})
        if output.exists():
            shutil.rmtree(output)
        mlflow.pyfunc.save_model(str(output), python_model=Mask2FormerModel(), artifacts=artifacts,
                                 signature=signature(), input_example=example, pip_requirements=_requirements(),
                                 metadata={"mode": str((spec.get("model") or {}).get("mode", "")),
                                           "checkpoint": checkpoint.name})
    return output
