"""The three sub-layers of a masked-attention decoder layer: cross-attention, self-attention, FFN.

Each supports post-norm (default) and pre-norm, and applies the configured dropout (the original
code builds these with dropout fixed at 0.0). Sequences are [L, B, C] as `nn.MultiheadAttention`
expects by default; names (`multihead_attn`, `self_attn`, `linear1`, `norm`) match the original.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class SelfAttentionLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, *, dropout: float, normalize_before: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier(self)

    def forward(self, tgt: Tensor, query_pos: Tensor | None) -> Tensor:
        """tgt, query_pos: [Q, B, C]."""
        if self.normalize_before:
            t = self.norm(tgt)
            q = _with_pos(t, query_pos)
            return tgt + self.dropout(self.self_attn(q, q, value=t, need_weights=False)[0])
        q = _with_pos(tgt, query_pos)
        return self.norm(tgt + self.dropout(self.self_attn(q, q, value=tgt, need_weights=False)[0]))


class CrossAttentionLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, *, dropout: float, normalize_before: bool) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier(self)

    def forward(
        self, tgt: Tensor, memory: Tensor, *, memory_mask: Tensor | None, pos: Tensor | None, query_pos: Tensor | None
    ) -> Tensor:
        """tgt: [Q, B, C]; memory, pos: [HW, B, C]; memory_mask: [B*heads, Q, HW] bool (True = blocked)."""
        t = self.norm(tgt) if self.normalize_before else tgt
        attended = self.multihead_attn(
            query=_with_pos(t, query_pos), key=_with_pos(memory, pos), value=memory,
            attn_mask=memory_mask, need_weights=False,
        )[0]
        out = tgt + self.dropout(attended)
        return out if self.normalize_before else self.norm(out)


class FFNLayer(nn.Module):
    def __init__(self, d_model: int, dim_feedforward: int, *, dropout: float, normalize_before: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier(self)

    def forward(self, tgt: Tensor) -> Tensor:
        t = self.norm(tgt) if self.normalize_before else tgt
        out = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(t)))))
        return out if self.normalize_before else self.norm(out)


def _xavier(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
