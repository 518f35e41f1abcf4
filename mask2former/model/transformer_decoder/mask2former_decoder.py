"""Mask2Former's masked-attention transformer decoder (the "predictor").

Learned queries attend, layer by layer, to one level of the pixel decoder's multi-scale features
(coarse to fine, round robin), each time only inside the mask predicted by the previous layer.
A prediction (class logits + mask logits) is made from the query features before the first
layer and after every layer; all but the last serve deep supervision.

Differences from the original, so the spec means what it says:
- exactly `dec_layers` layers are built (the original builds `dec_layers - 1`), so there are
  `dec_layers + 1` predictions and `dec_layers` auxiliary ones;
- `dropout` is applied in every sub-layer (the original hard-codes 0.0);
- the number of feature levels follows the pixel decoder (the original fixes 3).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.model.layers import MLP, PositionEmbeddingSine, c2_xavier_fill
from mask2former.model.transformer_decoder.layers import CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from mask2former.model.versioning import VersionedModule


class MultiScaleMaskedTransformerDecoder(VersionedModule):
    """(multi-scale features, mask features) -> predictions.

    forward(x: list of `num_feature_levels` maps [B, in_channels, h_l, w_l] (coarsest first),
            mask_features: [B, mask_dim, H, W])
      -> {"pred_logits": [B, Q, K+1], "pred_masks": [B, Q, H, W],
          "aux_outputs": [{"pred_logits", "pred_masks"}] * dec_layers}  (earliest first)
    The last logit is "no object".
    """

    _version = 1

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        dropout: float,
        mask_dim: int,
        num_feature_levels: int = 3,
        enforce_input_project: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim % nheads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by nheads {nheads}")
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_feature_levels = num_feature_levels
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2)

        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads, dropout=dropout, normalize_before=pre_norm) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads, dropout=dropout, normalize_before=pre_norm) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward, dropout=dropout, normalize_before=pre_norm) for _ in range(dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # initial query features
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # query positional embedding
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                c2_xavier_fill(conv)
                self.input_proj.append(conv)
            else:
                self.input_proj.append(nn.Sequential())

        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def forward(self, x: list[Tensor], mask_features: Tensor) -> dict:
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature levels, got {len(x)}")
        src, pos, sizes = [], [], []
        for i in range(self.num_feature_levels):
            sizes.append(x[i].shape[-2:])
            # [B, C, h, w] -> [B, C, h*w] -> [h*w, B, C]
            pos.append(self.pe_layer(x[i]).flatten(2).permute(2, 0, 1))
            level = self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(level.permute(2, 0, 1))
        batch = src[0].shape[1]
        # [Q, C] -> [Q, B, C]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, batch, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, batch, 1)

        classes, masks = [], []
        logits, mask_logits, attn_mask = self._predict(output, mask_features, sizes[0])
        classes.append(logits)
        masks.append(mask_logits)
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            # A query whose mask covers nothing would attend to nothing (NaN): let it see everything.
            attn_mask = attn_mask & ~attn_mask.all(-1, keepdim=True)
            output = self.transformer_cross_attention_layers[i](
                output, src[level], memory_mask=attn_mask, pos=pos[level], query_pos=query_pos
            )
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            logits, mask_logits, attn_mask = self._predict(
                output, mask_features, sizes[(i + 1) % self.num_feature_levels]
            )
            classes.append(logits)
            masks.append(mask_logits)
        return {
            "pred_logits": classes[-1],
            "pred_masks": masks[-1],
            "aux_outputs": [{"pred_logits": c, "pred_masks": m} for c, m in zip(classes[:-1], masks[:-1])],
        }

    def _predict(self, output: Tensor, mask_features: Tensor, attn_size) -> tuple[Tensor, Tensor, Tensor]:
        """Heads on [Q, B, C] queries -> logits [B, Q, K+1], masks [B, Q, H, W], attention mask
        [B*heads, Q, h*w] for the next layer (True where the predicted mask is < 0.5)."""
        decoded = self.decoder_norm(output).transpose(0, 1)  # [B, Q, C]
        logits = self.class_embed(decoded)
        mask_embed = self.mask_embed(decoded)
        mask_logits = (mask_embed @ mask_features.flatten(2)).view(
            mask_embed.shape[0], mask_embed.shape[1], *mask_features.shape[-2:]
        )  # [B, Q, C] x [B, C, H*W] -> [B, Q, H, W]
        attn = F.interpolate(mask_logits, size=attn_size, mode="bilinear", align_corners=False)
        # [B, Q, h*w] -> repeat per head -> [B*heads, Q, h*w]
        attn = attn.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5
        return logits, mask_logits, attn.detach()
