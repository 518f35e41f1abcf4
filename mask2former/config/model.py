"""`model` section: Swin/EfficientViT backbone, pixel decoder (`sem_seg_head`) and masked-attention decoder."""

from __future__ import annotations

from dataclasses import dataclass

from mask2former.config.fields import (
    INF,
    bool_field,
    enum_field,
    float_field,
    int_field,
    list_field,
    section,
    str_field,
)

FEATURE_NAMES = ("res2", "res3", "res4", "res5")


@dataclass
class SwinConfig:
    type: str = enum_field(
        "tiny", ("tiny", "small", "base", "large"), title="Swin variant",
        description="Swin preset. A preset supplies embed_dim, depths and num_heads of the released model of that "
        "size wherever the spec leaves those three at the tiny defaults; explicit values always win.",
    )
    embed_dim: int = int_field(96, title="embedding dimension", minimum=1, description="Channels of the patch embedding (stage 1 width).")
    depths: list = list_field([2, 2, 6, 2], title="blocks per stage", item_type="int", minimum=1, min_items=4, max_items=4,
                              description="Number of Swin blocks in each of the four stages.")
    num_heads: list = list_field([3, 6, 12, 24], title="attention heads per stage", item_type="int", minimum=1, min_items=4, max_items=4,
                                 description="Attention heads in each stage; embed_dim * 2**stage must divide by it.")
    patch_size: int = int_field(4, title="patch size", minimum=1, description="Side of the square patches embedded at the input.")
    window_size: int = int_field(7, title="window size", minimum=1, description="Side of the local attention windows (tokens).")
    mlp_ratio: float = float_field(4.0, title="MLP ratio", math_cond="> 0", minimum=0.0, description="Hidden width of each block's MLP as a multiple of its channels.")
    qkv_bias: bool = bool_field(True, title="qkv bias", description="Add a learnable bias to the query/key/value projections.")
    qk_scale: float = float_field(None, title="qk scale", math_cond="> 0", description="Attention logit scale; empty means head_dim ** -0.5.")
    drop_rate: float = float_field(0.0, title="dropout rate", minimum=0.0, maximum=1.0, math_cond="< 1.0", description="Dropout after the patch embedding and inside MLPs.")
    attn_drop_rate: float = float_field(0.0, title="attention dropout rate", minimum=0.0, maximum=1.0, math_cond="< 1.0", description="Dropout on attention weights.")
    drop_path_rate: float = float_field(
        0.3, title="stochastic depth rate", minimum=0.0, maximum=1.0, math_cond="< 1.0", automl_enabled=True,
        x_search_range=(0.0, 0.5), pbt="hot",
        description="Peak stochastic-depth probability (grows linearly over blocks). Tuned because the right amount of "
        "regularisation depends on dataset size: small datasets want more, large ones less.",
    )
    ape: bool = bool_field(False, title="absolute position embedding", description="Add a learned absolute position embedding to the patch tokens.")
    patch_norm: bool = bool_field(True, title="patch normalization", description="LayerNorm after the patch embedding.")
    out_indices: list = list_field([0, 1, 2, 3], title="output stages", item_type="int", minimum=0, maximum=3,
                                   description="Stages whose outputs feed the pixel decoder.")
    pretrain_img_size: int = int_field(384, title="pretraining image size", minimum=1, description="Image size of the pretrained weights; sizes the absolute position embedding.")
    use_checkpoint: bool = bool_field(False, title="activation checkpointing", description="Recompute Swin block activations in backward to save memory.")
    out_features: list = list_field(list(FEATURE_NAMES), title="output feature names", item_type="string", options=FEATURE_NAMES,
                                    description="Names of the returned feature maps, matching out_indices.")


@dataclass
class EfficientViTConfig:
    name: str = enum_field("l0", ("b0", "b1", "b2", "b3", "l0", "l1", "l2", "l3"), title="EfficientViT variant",
                           description="EfficientViT model (widths/depths of the released b0-b3 and l0-l3 models); used when model.backbone.type is efficientvit.")
    out_indices: list = list_field([1, 2, 3], title="output stages", item_type="int", minimum=0, maximum=3,
                                   description="Stages (i returns res{i+2}, stride 4 * 2**i) returned to the pixel decoder in addition to out_features. "
                                   "TAO's trainer ignores this field and feeds res2..res5; the defaults give the same here.")
    pretrain_img_size: int = int_field(384, title="pretraining image size", minimum=1,
                                       description="Image size of the pretrained weights. Recorded only: EfficientViT has no position embedding, so nothing built depends on it.")
    use_checkpoint: bool = bool_field(False, title="activation checkpointing", description="Recompute each stage's activations in backward (torch.utils.checkpoint) to save memory.")
    out_features: list = list_field(list(FEATURE_NAMES), title="output feature names", item_type="string", options=FEATURE_NAMES,
                                    description="Feature maps (res2..res5, strides 4..32) returned to the pixel decoder; out_indices may add more.")


@dataclass
class BackboneConfig:
    type: str = enum_field("swin", ("swin", "efficientvit"), title="backbone", description="Backbone family.")
    pretrained_weights: str = str_field("", title="pretrained backbone weights", description="Path to backbone weights (original Swin or EfficientViT release checkpoints accepted); empty trains from scratch.")
    swin: SwinConfig = section(SwinConfig, title="swin", description="Swin Transformer settings.")
    efficientvit: EfficientViTConfig = section(EfficientViTConfig, title="efficient vit", description="EfficientViT settings.")


@dataclass
class SemSegHeadConfig:
    common_stride: int = int_field(4, title="common stride", minimum=2, math_cond="^ 2", description="Output stride of the mask features (a power of two).")
    transformer_enc_layers: int = int_field(6, title="encoder layers", minimum=1, popular=True, description="Deformable-attention encoder layers in the pixel decoder.")
    convs_dim: int = int_field(256, title="conv dimension", minimum=1, popular=True, description="Channels of the pixel decoder's convolutions and encoder.")
    mask_dim: int = int_field(256, title="mask dimension", minimum=1, popular=True, description="Channels of the per-pixel mask embedding.")
    deformable_transformer_encoder_in_features: list = list_field(
        ["res3", "res4", "res5"], title="encoder input features", item_type="string", options=FEATURE_NAMES, min_items=1,
        description="Backbone features refined by the deformable encoder.",
    )
    num_classes: int = int_field(200, title="number of classes", minimum=1, description="Classes predicted (without the no-object class). See dataset.contiguous_id for how it must relate to the label map.")
    norm: str = enum_field("GN", ("GN", "BN", "SyncBN", "none", ""), title="norm", description="Normalisation in the pixel decoder's convolutions.")
    transformer_dim_feedforward: int = int_field(1024, title="encoder feed-forward size", minimum=1,
                                                 description="Feed-forward width of the pixel decoder's encoder layers (fixed at 1024 in the original code; exposed here so it is a real setting).")
    transformer_nheads: int = int_field(8, title="encoder heads", minimum=1, description="Attention heads of the deformable encoder; convs_dim must divide by it.")
    transformer_dropout: float = float_field(0.0, title="encoder dropout", minimum=0.0, maximum=1.0, math_cond="< 1.0", description="Dropout inside the deformable encoder.")
    transformer_n_points: int = int_field(4, title="sampling points", minimum=1, description="Sampling points per head and level in deformable attention.")


@dataclass
class MaskFormerConfig:
    dropout: float = float_field(
        0.0, title="decoder dropout", minimum=0.0, maximum=1.0, math_cond="< 1.0", automl_enabled=True,
        x_search_range=(0.0, 0.2), pbt="hot",
        description="Dropout in the transformer decoder (applied, unlike the original code). Tuned: helps small datasets.",
    )
    nheads: int = int_field(8, title="decoder heads", minimum=1, popular=True, description="Attention heads of the transformer decoder; hidden_dim must divide by it.")
    num_object_queries: int = int_field(
        100, title="object queries", minimum=1, maximum=INF, automl_enabled=True, popular=True, x_search_range=(20, 200),
        description="Number of learned queries, i.e. the most segments one image can yield.",
    )
    hidden_dim: int = int_field(
        256, title="hidden dimension", minimum=16, maximum=1024, math_cond="/ 8", automl_enabled=True, popular=True,
        x_search_range=(128, 512),
        description="Width of the transformer decoder; a multiple of 8 so the default 8 heads divide it.",
    )
    dim_feedforward: int = int_field(2048, title="decoder feed-forward size", minimum=1, description="Feed-forward width of each decoder layer.")
    dec_layers: int = int_field(
        10, title="decoder layers", minimum=1, maximum=50, automl_enabled=True, x_search_range=(3, 12),
        description="Masked-attention decoder layers (exactly this many are built).",
    )
    pre_norm: bool = bool_field(False, title="pre-norm", description="LayerNorm before (not after) attention and FFN.")
    class_weight: float = float_field(
        2.0, title="class loss weight", minimum=0.0, maximum=INF, automl_enabled=True, popular=True, x_search_range=(0.5, 8.0), pbt="hot",
        description="Weight of the classification loss (and matching cost). Tuned: its balance with the mask losses decides whether the model favours recall of classes or mask quality.",
    )
    dice_weight: float = float_field(
        5.0, title="dice loss weight", minimum=0.0, maximum=INF, automl_enabled=True, popular=True, x_search_range=(1.0, 20.0), pbt="hot",
        description="Weight of the dice mask loss (and matching cost). Tuned with mask_weight: it favours the overlap of large masks.",
    )
    mask_weight: float = float_field(
        5.0, title="mask loss weight", minimum=0.0, maximum=INF, automl_enabled=True, popular=True, x_search_range=(1.0, 20.0), pbt="hot",
        description="Weight of the per-point sigmoid cross-entropy mask loss (and matching cost). Tuned with dice_weight: it favours boundary accuracy.",
    )
    train_num_points: int = int_field(12544, title="sampled points", minimum=1, description="Points sampled per mask for the mask losses.")
    oversample_ratio: float = float_field(3.0, title="oversampling ratio", minimum=1.0, description="Candidate points drawn per kept point for importance sampling.")
    importance_sample_ratio: float = float_field(0.75, title="importance sampling ratio", minimum=0.0, maximum=1.0, popular=True,
                                                 description="Share of points taken where the prediction is most uncertain.")
    deep_supervision: bool = bool_field(True, title="deep supervision", description="Apply the loss to every decoder layer's prediction.")
    no_object_weight: float = float_field(
        0.1, title="no-object weight", minimum=0.0, maximum=1.0, math_cond="> 0.0", automl_enabled=True,
        x_search_range=(0.02, 0.5), pbt="hot",
        description="Class-loss weight of the no-object class. Tuned: it trades false positives against missed segments and depends on how crowded images are.",
    )


@dataclass
class ModelConfig:
    export: bool = bool_field(False, title="export", description="Marks a spec as describing the export graph (post-processing inside, TAO output tensors). The export action always builds that graph; training refuses model.export=true.")
    backbone: BackboneConfig = section(BackboneConfig, title="backbone", description="Backbone settings.")
    sem_seg_head: SemSegHeadConfig = section(SemSegHeadConfig, title="head", description="Pixel decoder settings.")
    mask_former: MaskFormerConfig = section(MaskFormerConfig, title="mask2former", description="Transformer decoder and loss settings.")
    mode: str = enum_field("panoptic", ("panoptic", "instance", "semantic"), title="segmentation mode", description="Task the model is trained and evaluated for.")
    object_mask_threshold: float = float_field(0.4, title="object mask threshold", minimum=0.0, maximum=1.0, description="Queries scoring below this are dropped in panoptic inference.")
    overlap_threshold: float = float_field(0.5, title="overlap threshold", minimum=0.0, maximum=1.0, description="Minimum visible share of a mask kept in panoptic inference.")
    test_topk_per_image: int = int_field(100, title="instances per image", minimum=1, description="Instances kept per image in instance inference.")
