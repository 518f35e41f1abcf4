"""Test-only bridge to `transformers`' Mask2Former: a matching HF config and a weight converter.

HF's model is used as an oracle: same weights, same input -> same logits. Where the two differ
by design, the tests pick settings under which both compute the same function:
- HF builds `decoder_layers - 1` decoder layers; we build exactly `dec_layers`, so HF gets
  `decoder_layers = dec_layers + 1`;
- HF's pixel-decoder encoder uses the decoder's head count and 4 sampling points, 3 levels
  (res3-res5) and GroupNorm; we configure ours the same;
- HF's Swin always applies the patch-embedding norm, has no qk_scale, and uses separate q/k/v
  projections (we split our fused `qkv`); its absolute position embedding is only added
  un-interpolated, so `ape` is compared at input size == pretrain_img_size;
- HF drops whole decoder layers with probability `dropout` in training ("layerdrop"), so
  training-mode comparisons use dropout 0.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

HF_SWIN = "model.pixel_level_module.encoder."
HF_PIXEL = "model.pixel_level_module.decoder."
HF_TRANSFORMER = "model.transformer_module."

# (our key regex, HF key template); first match wins. Fused qkv/in_proj keys are handled apart.
_RULES: list[tuple[str, str]] = [
    (r"backbone\.patch_embed\.proj\.(.*)", HF_SWIN + r"swin.embeddings.patch_embeddings.projection.\1"),
    (r"backbone\.patch_embed\.norm\.(.*)", HF_SWIN + r"swin.embeddings.norm.\1"),
    (r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm1\.(.*)", HF_SWIN + r"swin.encoder.layers.\1.blocks.\2.layernorm_before.\3"),
    (r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.norm2\.(.*)", HF_SWIN + r"swin.encoder.layers.\1.blocks.\2.layernorm_after.\3"),
    (r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.(.*)", HF_SWIN + r"swin.encoder.layers.\1.blocks.\2.attention.o_proj.\3"),
    (r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
     HF_SWIN + r"swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative_position_bias_table"),
    (r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.(fc\d)\.(.*)", HF_SWIN + r"swin.encoder.layers.\1.blocks.\2.mlp.\3.\4"),
    (r"backbone\.layers\.(\d+)\.downsample\.(.*)", HF_SWIN + r"swin.encoder.layers.\1.downsample.\2"),
    (r"sem_seg_head\.pixel_decoder\.input_proj\.(.*)", HF_PIXEL + r"input_projections.\1"),
    (r"sem_seg_head\.pixel_decoder\.transformer\.level_embed", HF_PIXEL + "level_embed"),
    (r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.self_attn\.(.*)", HF_PIXEL + r"encoder.layers.\1.self_attn.\2"),
    (r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.norm1\.(.*)", HF_PIXEL + r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.norm2\.(.*)", HF_PIXEL + r"encoder.layers.\1.final_layer_norm.\2"),
    (r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear(\d)\.(.*)", HF_PIXEL + r"encoder.layers.\1.fc\2.\3"),
    (r"sem_seg_head\.pixel_decoder\.mask_features\.(.*)", HF_PIXEL + r"mask_projection.\1"),
    (r"sem_seg_head\.pixel_decoder\.(adapter_\d+|layer_\d+)\.norm\.(.*)", HF_PIXEL + r"\1.1.\2"),
    (r"sem_seg_head\.pixel_decoder\.(adapter_\d+|layer_\d+)\.weight", HF_PIXEL + r"\1.0.weight"),
    (r"sem_seg_head\.predictor\.query_feat\.(.*)", HF_TRANSFORMER + r"queries_features.\1"),
    (r"sem_seg_head\.predictor\.query_embed\.(.*)", HF_TRANSFORMER + r"queries_embedder.\1"),
    (r"sem_seg_head\.predictor\.level_embed\.(.*)", HF_TRANSFORMER + r"level_embed.\1"),
    (r"sem_seg_head\.predictor\.input_proj\.(.*)", HF_TRANSFORMER + r"input_projections.\1"),
    (r"sem_seg_head\.predictor\.decoder_norm\.(.*)", HF_TRANSFORMER + r"decoder.layernorm.\1"),
    (r"sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.*)",
     HF_TRANSFORMER + r"decoder.layers.\1.cross_attn.\2"),
    (r"sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.norm\.(.*)",
     HF_TRANSFORMER + r"decoder.layers.\1.cross_attn_layer_norm.\2"),
    (r"sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(.*)",
     HF_TRANSFORMER + r"decoder.layers.\1.self_attn.out_proj.\2"),
    (r"sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.norm\.(.*)",
     HF_TRANSFORMER + r"decoder.layers.\1.self_attn_layer_norm.\2"),
    (r"sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.linear(\d)\.(.*)", HF_TRANSFORMER + r"decoder.layers.\1.fc\2.\3"),
    (r"sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.norm\.(.*)", HF_TRANSFORMER + r"decoder.layers.\1.final_layer_norm.\2"),
    (r"sem_seg_head\.predictor\.mask_embed\.layers\.(\d+)\.(.*)", HF_TRANSFORMER + r"decoder.mask_predictor.mask_embedder.\1.0.\2"),
    (r"sem_seg_head\.predictor\.class_embed\.(.*)", r"class_predictor.\1"),
]

_SWIN_QKV = re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
_SELF_IN_PROJ = re.compile(r"sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)")
_OUT_NORM = re.compile(r"backbone\.norm(\d)\.(.*)")

#: HF keys with no counterpart in our model (unused by the HF forward pass / loss buffers).
HF_UNMAPPED = re.compile(r"model\.pixel_level_module\.encoder\.swin\.layernorm\..*|criterion\.empty_weight")


def hf_config(args: dict[str, Any], *, image_size: int) -> Mask2FormerConfig:
    """HF config computing the same function as our model built from `model_constructor_args` output."""
    swin, pixel, pred, crit = args["backbone"]["swin"], args["pixel_decoder"], args["predictor"], args["criterion"]
    assert swin["patch_norm"] and swin["qk_scale"] is None, "HF Swin always norms patches and has no qk_scale"
    assert pixel["transformer_nheads"] == pred["nheads"] and pixel["transformer_n_points"] == 4
    assert pixel["transformer_in_features"] == ["res3", "res4", "res5"] and pixel["norm"] == "GN"
    backbone = SwinConfig(
        image_size=image_size, patch_size=swin["patch_size"], num_channels=3, embed_dim=swin["embed_dim"],
        depths=swin["depths"], num_heads=swin["num_heads"], window_size=swin["window_size"],
        mlp_ratio=swin["mlp_ratio"], qkv_bias=swin["qkv_bias"], hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, drop_path_rate=0.0, use_absolute_embeddings=swin["ape"],
        out_features=[f"stage{i + 1}" for i in swin["out_indices"]],
    )
    return Mask2FormerConfig(
        backbone_config=backbone, feature_size=pixel["conv_dim"], mask_feature_size=pixel["mask_dim"],
        hidden_dim=pred["hidden_dim"], encoder_feedforward_dim=pixel["transformer_dim_feedforward"],
        encoder_layers=pixel["transformer_enc_layers"], decoder_layers=pred["dec_layers"] + 1,
        num_attention_heads=pred["nheads"], dropout=pred["dropout"], dim_feedforward=pred["dim_feedforward"],
        pre_norm=pred["pre_norm"], common_stride=pixel["common_stride"], num_queries=pred["num_queries"],
        num_labels=pred["num_classes"], no_object_weight=crit["no_object_weight"], class_weight=crit["class_weight"],
        mask_weight=crit["mask_weight"], dice_weight=crit["dice_weight"], train_num_points=crit["num_points"],
        oversample_ratio=crit["oversample_ratio"], importance_sample_ratio=crit["importance_sample_ratio"],
        feature_strides=[swin["patch_size"] * 2**i for i in range(4)], output_auxiliary_logits=True,
    )


def convert_to_hf(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our Mask2FormerModel state dict -> HF Mask2FormerForUniversalSegmentation state dict."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if m := _SWIN_QKV.fullmatch(key):
            base = HF_SWIN + f"swin.encoder.layers.{m[1]}.blocks.{m[2]}.attention."
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}{name}.{m[3]}"] = part.clone()
            continue
        if m := _SELF_IN_PROJ.fullmatch(key):
            base = HF_TRANSFORMER + f"decoder.layers.{m[1]}.self_attn."
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}{name}.{m[2]}"] = part.clone()
            continue
        if m := _OUT_NORM.fullmatch(key):
            out[HF_SWIN + f"hidden_states_norms.stage{int(m[1]) + 1}.{m[2]}"] = value
            continue
        if key == "backbone.absolute_pos_embed":
            # [1, C, H, W] -> [1, H*W, C]
            out[HF_SWIN + "swin.embeddings.position_embeddings"] = value.flatten(2).transpose(1, 2).contiguous()
            continue
        for pattern, template in _RULES:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, template, key)] = value
                break
        else:
            raise KeyError(f"no HF counterpart for {key}")
    return out


def build_hf_twin(model: torch.nn.Module, args: dict[str, Any], *, image_size: int) -> Mask2FormerForUniversalSegmentation:
    """An HF model holding exactly `model`'s weights; raises if any HF weight stays unset."""
    hf = Mask2FormerForUniversalSegmentation(hf_config(args, image_size=image_size))
    converted = convert_to_hf(model.state_dict())
    result = hf.load_state_dict(converted, strict=False)
    missing = [k for k in result.missing_keys if not HF_UNMAPPED.fullmatch(k)]
    if missing or result.unexpected_keys:
        raise AssertionError(f"converter gap: missing {missing}, unexpected {result.unexpected_keys}")
    return hf
