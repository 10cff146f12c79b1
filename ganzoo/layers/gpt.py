"""Decoder-only GPT for the stage-2 code prior (Esser et al. 2021, "Taming Transformers", Sec. 3.2).

The network follows taming-transformers' ``taming/modules/transformer/mingpt.py`` (itself Karpathy's
minGPT) parameter for parameter, so parameter counts and state-dict shapes match the official models:

* token embedding ``[vocab_size, n_embd]`` and a learned position embedding ``[1, block_size, n_embd]``
  that starts at zero;
* ``n_layer`` pre-LayerNorm blocks: ``x + attn(ln1(x))`` then ``x + mlp(ln2(x))``; attention has
  separate ``key``/``query``/``value``/``proj`` Linears with bias, the MLP is
  ``n_embd -> 4 n_embd -> n_embd`` with exact GELU;
* a final LayerNorm and a bias-free ``head`` Linear to the vocabulary;
* minGPT's init: N(0, 0.02) for Linear and Embedding weights, zero biases, LayerNorm (1, 0).

Differences that change no number: attention runs through ``F.scaled_dot_product_attention``, and
the key/value cache is an explicit :class:`KVCache` object instead of taming's stacked ``present``
tensors. Conditioning is by prefix tokens in the same vocabulary (class ``c`` is token ``c``, SOS for
unconditional models), which the caller builds; the network needs nothing special for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys and values of the tokens seen so far, one ``[N, heads, T_so_far, head_dim]`` pair per layer.

    Built empty by :meth:`GPT.new_cache`; every cached :meth:`GPT.forward` appends the new tokens'
    keys/values, so incremental decoding costs one token per step instead of the whole sequence.
    """

    def __init__(self, n_layer: int):
        self.n_layer = n_layer
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """Number of tokens whose keys/values are stored (0 when empty)."""
        k = self.keys[0]
        return 0 if k is None else k.shape[2]

    def reset(self) -> None:
        """Forget every stored token (the cache can then serve a new sequence)."""
        self.keys = [None] * self.n_layer
        self.values = [None] * self.n_layer

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new ``k, v`` of ``layer`` after the old ones; return all keys/values so far."""
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is not None:
            if old_k.shape[0] != k.shape[0]:
                raise ValueError(
                    f"KVCache holds a batch of {old_k.shape[0]} sequences but got {k.shape[0]}; "
                    "call cache.reset() (or model.new_cache()) before starting a new batch"
                )
            k = torch.cat((old_k, k), dim=2)  # [N, heads, T_so_far + T, head_dim]
            v = torch.cat((old_v, v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention with minGPT's four biased projections."""

    def __init__(self, n_embd: int, n_head: int, attn_pdrop: float, resid_pdrop: float):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head = n_head
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_pdrop = attn_pdrop
        self.resid_drop = nn.Dropout(resid_pdrop)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        n, t, c = x.shape
        hd = c // self.n_head

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.n_head, hd).transpose(1, 2)  # [N, heads, T, head_dim]

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        if cache is not None:
            k, v = cache.append(layer, k, v)  # [N, heads, past + T, head_dim]
        past = k.shape[2] - t  # this layer's own count (cache.length reads layer 0, already extended)

        dropout_p = self.attn_pdrop if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=t > 1)
        elif t == 1:
            # One new token may look at every cached token: no mask at all.
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            # Several new tokens after a cache: is_causal would align the mask top-left, so build
            # the bottom-right one (new token i sees the past plus new tokens 0..i).
            rows = torch.arange(t, device=x.device)[:, None] + past
            cols = torch.arange(past + t, device=x.device)[None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cols <= rows, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(n, t, c)  # [N, T, C], heads side by side
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, n_embd: int, n_head: int, attn_pdrop: float, resid_pdrop: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(resid_pdrop),
        )

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """minGPT language model over a vocabulary of ``vocab_size`` tokens, context ``block_size``.

    ``forward(idx)`` maps ``[N, T]`` token ids to next-token logits ``[N, T, vocab_size]``: the
    logits at position ``t`` predict token ``t + 1`` (taming's Net2NetTransformer feeds ``[c, z[:-1]]``
    and reads the logits of ``z``).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        block_size: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        embd_pdrop: float = 0.0,
        resid_pdrop: float = 0.0,
        attn_pdrop: float = 0.0,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size), ("n_layer", n_layer)):
            if value < 1:
                raise ValueError(f"GPT: {name} must be >= 1, got {value}")
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_embd = n_embd
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, attn_pdrop, resid_pdrop) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # minGPT's init; pos_emb is a bare Parameter and keeps its zeros.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for incremental decoding with this model."""
        return KVCache(self.n_layer)

    def forward(
        self,
        idx: torch.Tensor,
        *,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``idx [N, T]`` int64 -> logits ``[N, T, vocab_size]``.

        With ``cache``, ``idx`` holds only the new tokens: earlier keys/values come from the cache, the
        new ones are appended to it, and positions continue from ``cache.length``. ``positions [T]``
        overrides the position indices.
        """
        if idx.dim() != 2:
            raise ValueError(f"GPT expects token ids of shape [N, T], got {tuple(idx.shape)}")
        t = idx.shape[1]
        past = 0 if cache is None else cache.length
        if past + t > self.block_size:
            raise ValueError(
                f"GPT: {past} cached + {t} new tokens exceed block_size={self.block_size}; "
                "shorten the sequence (e.g. sample large grids with the sliding window) or build the "
                "transformer with a larger block_size"
            )
        if positions is None:
            positions = torch.arange(past, past + t, device=idx.device)
        else:
            if positions.shape != (t,):
                raise ValueError(f"GPT: positions must have shape [{t}], got {tuple(positions.shape)}")
            if t and (int(positions.min()) < 0 or int(positions.max()) >= self.block_size):
                raise ValueError(f"GPT: positions must lie in [0, {self.block_size}), got {positions.tolist()}")
        x = self.tok_emb(idx) + self.pos_emb[0, positions]  # [N, T, C]
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        return self.head(self.ln_f(x))  # [N, T, vocab_size]

    def configure_optimizer_groups(self, weight_decay: float) -> list[dict]:
        """minGPT's AdamW split: decay Linear weights only; biases, LayerNorm and Embedding weights and
        ``pos_emb`` get none. Returns two param groups, each with its ``weight_decay``."""
        decay: dict[str, nn.Parameter] = {}
        no_decay: dict[str, nn.Parameter] = {}
        for mod_name, module in self.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                if p_name == "weight" and isinstance(module, nn.Linear):
                    decay[full] = p
                else:  # biases, LayerNorm / Embedding weights, pos_emb
                    no_decay[full] = p
        return [
            {"params": [decay[k] for k in sorted(decay)], "weight_decay": weight_decay},
            {"params": [no_decay[k] for k in sorted(no_decay)], "weight_decay": 0.0},
        ]
