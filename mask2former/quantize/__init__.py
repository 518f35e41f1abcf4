"""Post-training quantization: torchao weight-only int8 of a checkpoint, ONNX Runtime static int8 of an
exported graph, NVIDIA ModelOpt when installed. The `mask2former quantize` action, which also reports the
size and metric change against the float model, is `mask2former/actions/quantize.py`."""

from mask2former.quantize.settings import BACKENDS, LayerRule, QuantizeSettings, quantize_settings

__all__ = ["BACKENDS", "LayerRule", "QuantizeSettings", "quantize_settings"]
