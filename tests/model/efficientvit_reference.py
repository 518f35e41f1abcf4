"""Compare our EfficientViT with the original release (mit-han-lab/efficientvit) on identical weights.

Both implementations share the release's key layout, so one state dict fits both. Each weight and
the input come from torch's CPU generator seeded with the key's position in the sorted state dict,
so any machine rebuilds exactly the same numbers without storing them.

The release's model code is not on a package index; where a checkout of its source is available,
`load_release_backbones(root)` imports the backbone constructors from it and the live test compares
every output map. What that comparison printed is recorded in `efficientvit_release_outputs.json`
(regenerate with
`python -m tests.model.efficientvit_reference --record ROOT --revision COMMIT`), so every run also
checks our outputs against the release's recorded ones.

Loading the release: `efficientvit/models/nn/__init__.py` star-imports a Triton RMS-norm kernel
(GPU-only, used by the release's SAM models, not by these backbones) and the release trainer's
scheduler (for drop-path). The loader imports only the files the backbones need (`nn/act.py`,
`nn/norm.py`, `nn/ops.py`, `models/utils`, `efficientvit/backbone.py`, `efficientvit/cls.py`) and gives `norm.py` a
`triton_rms_norm` module whose kernel raises if anything calls it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mask2former.model.backbone.efficientvit import EFFICIENTVIT_PRESETS, EfficientViT

RECORD = Path(__file__).with_name("efficientvit_release_outputs.json")
#: (height, width) of the inputs: 192x224 puts every attention stage in the linear form (res5 6x7 = 42
#: tokens > head dim 32); 64x64 puts the last stage in the quadratic form (2x2 tokens).
SIZES = ((192, 224), (64, 64))
#: Flat positions of each map sampled into the record (besides its mean, std and mean |x|).
SAMPLES = 16


def _uniform(shape: torch.Size | tuple[int, ...], seed: int) -> Tensor:
    """Values in [0, 1) from torch's CPU generator seeded with `seed` (Mersenne Twister: the same on every machine)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def deterministic_state(model: nn.Module) -> dict[str, Tensor]:
    """A state dict for `model` that depends only on its keys and shapes.

    Conv/linear weights are uniform with variance 1/fan_in (activations keep their scale through
    the depth), BatchNorm statistics and affine terms near the identity, biases small.
    """
    state: dict[str, Tensor] = {}
    for salt, (key, value) in enumerate(sorted(model.state_dict().items())):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
            continue
        u = _uniform(value.shape, salt)
        centred = 2.0 * u - 1.0  # [-1, 1), variance 1/3
        if key.endswith("running_var"):
            tensor = 0.5 + u
        elif key.endswith("norm.weight"):
            tensor = 1.0 + 0.2 * centred
        elif key.endswith(("bias", "running_mean")):
            tensor = 0.1 * centred
        else:
            fan_in = value[0].numel() if value.dim() > 1 else 1
            tensor = centred * math.sqrt(3.0 / fan_in)
        state[key] = tensor.to(value.dtype)
    return state


def deterministic_input(height: int, width: int) -> Tensor:
    """One normalised-looking image [1, 3, H, W] (values in [-2, 2)), seeded like the weights."""
    return 4.0 * _uniform((1, 3, height, width), 1_000_003) - 2.0


def with_deterministic_weights(constructor: Callable[[], nn.Module]) -> nn.Module:
    """The model built on the meta device (no default init to pay for), then given `deterministic_state`."""
    with torch.device("meta"):
        model = constructor()
    model.load_state_dict(deterministic_state(model), strict=True, assign=True)
    return model.eval()


def our_features(name: str, x: Tensor) -> dict[str, Tensor]:
    model = with_deterministic_weights(lambda: EfficientViT(name=name))
    with torch.no_grad():
        return model(x)


@dataclass(frozen=True)
class Release:
    """Constructors imported from the release source: backbones (all eight) and ImageNet models (no l0)."""

    backbones: dict[str, Callable[[], nn.Module]]
    classifiers: dict[str, Callable[[], nn.Module]]


def load_release(root: Path) -> Release:
    """Import the release's backbone and classifier constructors from a source checkout at `root`."""
    package = root / "efficientvit"
    if not (package / "models" / "efficientvit" / "backbone.py").is_file():
        raise FileNotFoundError(f"{root} is not a checkout of the EfficientViT release (no efficientvit/models/"
                                "efficientvit/backbone.py)")
    for name, path in (("efficientvit", package), ("efficientvit.models", package / "models"),
                       ("efficientvit.models.nn", package / "models" / "nn"),
                       ("efficientvit.models.efficientvit", package / "models" / "efficientvit")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]  # a namespace: its __init__ (and its star-imports) is not run
        sys.modules[name] = module
    triton = types.ModuleType("efficientvit.models.nn.triton_rms_norm")

    class TritonRMSNorm2dFunc:  # the release's name
        @staticmethod
        def apply(*_args: object) -> Tensor:
            raise RuntimeError("the Triton RMS norm is not part of the EfficientViT backbones")

    triton.TritonRMSNorm2dFunc = TritonRMSNorm2dFunc  # type: ignore[attr-defined]
    sys.modules[triton.__name__] = triton
    nn_package = sys.modules["efficientvit.models.nn"]
    for part in ("act", "norm", "ops"):
        module = _import_file(f"efficientvit.models.nn.{part}", package / "models" / "nn" / f"{part}.py")
        for attribute in getattr(module, "__all__", []):
            setattr(nn_package, attribute, getattr(module, attribute))
    models = package / "models" / "efficientvit"
    backbone = _import_file("efficientvit.models.efficientvit.backbone", models / "backbone.py")
    cls = _import_file("efficientvit.models.efficientvit.cls", models / "cls.py")
    return Release(
        backbones={name: getattr(backbone, f"efficientvit_backbone_{name}") for name in EFFICIENTVIT_PRESETS},
        classifiers={name: getattr(cls, f"efficientvit_cls_{name}") for name in EFFICIENTVIT_PRESETS
                     if hasattr(cls, f"efficientvit_cls_{name}")},
    )


def _import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def release_features(constructor: Callable[[], nn.Module], x: Tensor) -> dict[str, Tensor]:
    """The release backbone's `stage1`..`stage4` as res2..res5 (TAO's wrapper does the same renaming)."""
    model = with_deterministic_weights(constructor)
    with torch.no_grad():
        out = model(x)
    return {f"res{i + 1}": out[f"stage{i}"] for i in range(1, 5)}


def summarise(feature: Tensor) -> dict[str, object]:
    """What the record keeps of one map: shape, mean, std, mean |x| and SAMPLES evenly spaced values."""
    flat = feature.double().flatten()
    positions = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long()
    return {"shape": list(feature.shape), "mean": flat.mean().item(), "std": flat.std().item(),
            "abs_mean": flat.abs().mean().item(), "samples": flat[positions].tolist()}


def record(root: Path, revision: str, out: Path = RECORD) -> dict[str, object]:
    """Run the release (source at `root`, commit `revision`) on every name and size; write the summaries to `out`."""
    constructors = load_release(root).backbones
    torch.set_num_threads(1)
    outputs: dict[str, dict[str, dict[str, object]]] = {}
    for name, constructor in constructors.items():
        for height, width in SIZES:
            features = release_features(constructor, deterministic_input(height, width))
            outputs[f"{name}@{height}x{width}"] = {k: summarise(v) for k, v in features.items()}
    report = {"source": "mit-han-lab/efficientvit, efficientvit/models/efficientvit/backbone.py",
              "revision": revision, "torch": torch.__version__,
              "command": "python -m tests.model.efficientvit_reference --record ROOT --revision COMMIT",
              "sizes": [list(size) for size in SIZES], "outputs": outputs}
    out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", type=Path, required=True, metavar="ROOT",
                        help="checkout of the EfficientViT release source")
    parser.add_argument("--revision", required=True, help="the release commit that ROOT holds (kept in the record)")
    args = parser.parse_args()
    written = record(args.record, args.revision)
    print(f"wrote {len(written['outputs'])} entries to {RECORD}")  # type: ignore[arg-type]
