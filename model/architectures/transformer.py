"""Transformer encoder-decoder (Vaswani et al., 2017), Marian/OPUS-MT layout.

Post-norm residual blocks (pre-norm with final layer norms for M2M100/NLLB),
sinusoidal positions in the [sin | cos] layout, embeddings scaled by
sqrt(d_model), optional shared source/target embeddings tied to the output
projection, and a final logits bias: the same parameter layout as Marian's
`transformer` so OPUS-MT weights can be mapped onto it.

Decoding interface shared with `model.architectures.rnn.RNNSeq2Seq`:
    memory = model.encode(src)
    state = model.init_state(memory)
    logits, state = model.decode_step(prev_tokens, memory, state)
    state = model.reorder(state, index)

Letters in shape comments: B batch, S source length, T target length,
V vocabulary, D model dim, H heads, d head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.architectures.cross_memory import RowMemory, TransformerMemory, encoder_memory
from model.architectures.decoder_cache import StepCache, TransformerState
from model.kernels import cpu_kernels


@dataclass(frozen=True)
class TransformerConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    ff_dim: int = 2048
    dropout: float = 0.1  # embeddings and residual connections
    attn_dropout: float = 0.0  # attention weights
    activation_dropout: float = 0.0  # inside the feed-forward block (fairseq/Marian default: none)
    # One embedding table for both sides needs a joint vocabulary.
    share_embeddings: bool = True
    tie_output: bool = True
    pad_id: int = 0
    bos_id: int = 2  # the decoder's first input (Marian: the pad id, its decoder_start_token_id)
    eos_id: int = 3
    # What imported models differ in (model/formats/hf/marian.py); the defaults are our own models'.
    activation: str = "relu"  # feed-forward non-linearity: relu, swish (= silu), gelu, gelu_tanh
    scale_embedding: bool = True  # multiply embeddings by sqrt(d_model) before adding positions
    # Sinusoidal table: "fairseq" (ours), "marian" (transformers' Marian formula) or "stored"
    # (tables held in the weights: src_positions / tgt_positions, max_positions rows each).
    positions: str = "fairseq"
    max_positions: int = 0  # longest source or target (in positions) the model takes; 0: no limit
    # The id that pads sources, when the source vocabulary puts it elsewhere than pad_id (Marian models
    # with separate vocabularies: pad_id is the target's); -1: pad_id.
    src_pad_id: int = -1
    # Layer norm before each sub-layer, plus a final one after each stack (fairseq's
    # --encoder-normalize-before; M2M100 and NLLB-200); False: after each residual (ours, Marian).
    pre_norm: bool = False
    # Row of the sinusoidal table that the first token takes (fairseq-style tables start at pad_id + 1).
    position_offset: int = 0

    @property
    def source_pad_id(self) -> int:
        return self.pad_id if self.src_pad_id < 0 else self.src_pad_id

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("share_embeddings needs src_vocab_size == tgt_vocab_size")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.positions not in (*POSITION_FORMULAS, "stored"):
            raise ValueError(f"positions must be one of {[*POSITION_FORMULAS, 'stored']}, got {self.positions!r}")
        if self.positions == "stored" and self.max_positions < 1:
            raise ValueError("positions='stored' needs max_positions > 0 (the tables' length)")


def sinusoidal_positions(length: int, dim: int, offset: int = 0) -> torch.Tensor:
    """(length, dim) table, first half sin, second half cos, frequencies 10000**(-i / (D/2 - 1)) (fairseq)."""
    half = dim // 2
    inv_freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    pos = torch.arange(offset, offset + length, dtype=torch.float32)
    angles = pos[:, None] * inv_freq[None, :]  # (L, D/2)
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table


def marian_positions(length: int, dim: int) -> torch.Tensor:
    """transformers' Marian table: same [sin | cos] layout, frequencies 10000**(-2i / D).

    Computed in float64 and cast, as transformers does, so imported models see bit-identical
    positions. The two formulas differ by up to ~2 per entry: a model must keep its own.
    """
    half = dim // 2
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    inv_freq = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float64) / dim)
    angles = pos * inv_freq[None, :]  # (L, D/2)
    table = torch.zeros(length, dim, dtype=torch.float64)
    table[:, :half] = torch.sin(angles)
    table[:, half:2 * half] = torch.cos(angles)
    return table.float()


POSITION_FORMULAS = {"fairseq": sinusoidal_positions, "marian": marian_positions}
ACTIVATIONS = {
    "relu": F.relu,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,  # exact (erf), as transformers' "gelu"
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # transformers' "gelu_new"
}


class PositionCache:
    """The sinusoidal table computed once per device and dtype, grown when a longer input arrives.

    Decoding asks for one row per step; rebuilding the table on the CPU and copying it to the
    device at every step cost more than the lookup. A plain attribute, not a buffer: it is
    derived from the config, so it is never saved with the weights.
    """

    def __init__(self, dim: int, formula=sinusoidal_positions):
        self.dim, self.formula = dim, formula
        self.tables: dict[tuple, torch.Tensor] = {}

    def rows(self, start: int, length: int, like: torch.Tensor) -> torch.Tensor:
        """(length, D) positions start .. start+length-1, on `like`'s device and dtype."""
        key = (like.device, like.dtype)
        table = self.tables.get(key)
        if table is None or table.size(0) < start + length:
            size = max(start + length, 2 * (table.size(0) if table is not None else 0), 256)
            table = self.formula(size, self.dim).to(like)
            self.tables[key] = table
        return table[start:start + length]


def _few_query_attention(q, k, v, mask) -> torch.Tensor:
    """Attention of a decoding step: q (B, H, W, d), the W beams of a row (1 for self-attention),
    k/v (B, H, T, d) -> (B, H, W, d).

    On CPU the fused kernel sets up a block per (row, head) and costs ~1.5x two batched matmuls at
    decoding shapes (T of 10-80); the result agrees to fp32 rounding.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5  # (B, H, W, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(-1), v)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.qkv: nn.Linear | None = None  # set by fuse_qkv (inference), in place of q/k/v_proj

    def fuse_qkv(self) -> None:
        """For decoding only: one (D -> 3D) product gives the queries, keys and values of self-attention
        in place of three (D -> D) products. A decoding step's GEMMs are small (rows = live beams), so
        one wider product runs closer to the CPU's peak than three narrow ones, and int8 quantizes the
        input once instead of three times. The three layers go (their weights live on in `qkv`), so
        the module no longer loads or saves checkpoints, and cross-attention, whose queries and
        keys/values come from different inputs, must not be fused.
        """
        parts = (self.q_proj, self.k_proj, self.v_proj)
        weight = parts[0].weight
        fused = nn.Linear(weight.size(1), 3 * weight.size(0), device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([p.weight for p in parts]))
            fused.bias.copy_(torch.cat([p.bias if p.bias is not None else torch.zeros_like(p.weight[:, 0])
                                        for p in parts]))
        self.qkv = fused.train(self.training)
        del self.q_proj, self.k_proj, self.v_proj

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        return x.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, H, L, d)

    def project_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention's queries, keys and values of x (..., D), each (..., D): views of one product
        when fused, rows 3D floats apart."""
        if self.qkv is None:
            k, v = self.k_proj(x), self.v_proj(x)  # before q, as attend() always ran: training stays bit-identical
            return self.q_proj(x), k, v
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return q, k, v

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention's queries, keys and values of x (B, L, D), each (B, H, L, d)."""
        q, k, v = self.project_rows(x)
        return self._heads(q), self._heads(k), self._heads(v)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
        """x (N, Tq, D) attends over k, v (B, H, Tk, d); mask broadcasts to (B, H, Tq, Tk)."""
        return self.attend_queries(self._heads(self.q_proj(x)), k, v, mask)

    def weights(self, x: torch.Tensor, k: torch.Tensor, mask) -> torch.Tensor:
        """The attention weights (B, H, Tq, Tk) that x (B, Tq, D) gives keys k (B, H, Tk, d) under mask (True
        where a query may look): what `attend` averages the values with, spelled out (its kernels never
        materialize them)."""
        q = self._heads(self.q_proj(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * q.size(-1) ** -0.5
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.float().softmax(-1)

    def attend_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
        """Queries q (N, H, Tq, d) attend over k, v (B, H, Tk, d) -> (N, Tq, D), after the output projection.

        N is B, or a multiple W*B in a decoding step (Tq 1): then rows W*b .. W*b+W-1 of q, the beams of
        sentence b, all attend over row b of k and v (cross-attention keeps one copy of each sentence's
        encoder keys/values instead of one per beam, so each step reads 1/W of the memory).
        """
        N, H, Tq, d = q.shape
        B = k.size(0)
        if N != B:  # Tq is 1
            q = q.view(B, N // B, H, d).transpose(1, 2)  # (B, H, W, d): a sentence's beams as its queries
        p = self.dropout if self.training else 0.0
        if Tq == 1 and p == 0.0 and q.device.type == "cpu":
            out = _few_query_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, Tq or W, d)
        # (B, Tq or W, H, d) -> (N, Tq, D): beam rows come back in their order, sentence-major.
        return self.out_proj(out.transpose(1, 2).reshape(N, Tq, H * d))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ff_dim: int, dropout: float, activation: str = "relu"):
        super().__init__()
        self.fc1 = nn.Linear(d_model, ff_dim)
        self.fc2 = nn.Linear(ff_dim, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x):
        return self.fc2(self.dropout(self.activation(self.fc1(x))))


class _Residual(nn.Module):
    """Post-norm (norm(x + f(x))) or pre-norm (x + f(norm(x))) residual blocks, by the config."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.dropout = nn.Dropout(cfg.dropout)

    def sublayer_input(self, x, norm):
        return norm(x) if self.pre_norm else x

    def residual(self, x, out, norm):
        return x + self.dropout(out) if self.pre_norm else norm(x + self.dropout(out))


class EncoderLayer(_Residual):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attn_dropout)
        self.self_norm = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.ff_dim, cfg.activation_dropout, cfg.activation)
        self.ffn_norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x, mask):
        h = self.sublayer_input(x, self.self_norm)
        x = self.residual(x, self.self_attn.attend_queries(*self.self_attn.project_qkv(h), mask), self.self_norm)
        return self.residual(x, self.ffn(self.sublayer_input(x, self.ffn_norm)), self.ffn_norm)


class DecoderLayer(_Residual):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attn_dropout)
        self.self_norm = nn.LayerNorm(cfg.d_model)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attn_dropout)
        self.cross_norm = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.ff_dim, cfg.activation_dropout, cfg.activation)
        self.ffn_norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x, cache, self_mask, cross):
        """x (B, Tq, D); cache the self-attention keys/values of earlier positions (GatheredLayerCache or
        StepLayerCache: a decoding step, Tq 1), or None (every position at once, under self_mask);
        cross this layer's part of the encoder memory (model/architectures/cross_memory.py).

        Returns x and the cache extended by x's positions (None without a cache).
        """
        h = self.sublayer_input(x, self.self_norm)
        if cache is None:
            attended = self.self_attn.attend_queries(*self.self_attn.project_qkv(h), self_mask)
        else:
            attended, cache = cache.attend(self.self_attn, h)
        x = self.residual(x, attended, self.self_norm)
        h = self.sublayer_input(x, self.cross_norm)
        x = self.residual(x, cross.attend(self.cross_attn, h), self.cross_norm)
        return self.residual(x, self.ffn(self.sublayer_input(x, self.ffn_norm)), self.ffn_norm), cache

    def cross_weights(self, x, self_mask, cross) -> torch.Tensor:
        """The cross-attention weights (B, H, Tq, S) this layer gives x (every position at once, under
        self_mask) over cross (a GatheredCross)."""
        h = self.sublayer_input(x, self.self_norm)
        x = self.residual(x, self.self_attn.attend_queries(*self.self_attn.project_qkv(h), self_mask), self.self_norm)
        return self.cross_attn.weights(self.sublayer_input(x, self.cross_norm), cross.k, cross.mask)


class Transformer(nn.Module):
    arch = "transformer"
    # decode_step takes memory with one row per sentence for several beam rows per sentence (see attend).
    shares_memory_across_beams = True

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        if cfg.share_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        if cfg.pre_norm:  # pre-norm stacks end in a layer norm (absent from post-norm checkpoints)
            self.enc_norm = nn.LayerNorm(cfg.d_model)
            self.dec_norm = nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.tgt_vocab_size, bias=True)
        if cfg.tie_output:
            self.output.weight = self.tgt_embed.weight
        self.dropout = nn.Dropout(cfg.dropout)
        self.embed_scale = math.sqrt(cfg.d_model) if cfg.scale_embedding else 1.0
        if cfg.positions == "stored":
            # Saved with the weights (the tables an imported or exported model was built with).
            self.register_buffer("src_positions", torch.zeros(cfg.max_positions, cfg.d_model))
            self.register_buffer("tgt_positions", torch.zeros(cfg.max_positions, cfg.d_model))
        else:
            self.positions = PositionCache(cfg.d_model, POSITION_FORMULAS[cfg.positions])
        self._init_weights()

    def _init_weights(self):
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
            elif "bias" in name:
                nn.init.zeros_(p)
        # Scaled by sqrt(D) on lookup, so start embeddings at ~1/sqrt(D).
        for emb in {
            id(self.src_embed): self.src_embed,
            id(self.tgt_embed): self.tgt_embed,
        }.values():
            nn.init.normal_(emb.weight, std=self.cfg.d_model**-0.5)
            with torch.no_grad():
                emb.weight[self.cfg.pad_id].zero_()

    def _embed(self, side: str, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Token embeddings plus positions offset .. offset+L-1 for the "src" or "tgt" side."""
        table = self.src_embed if side == "src" else self.tgt_embed
        x = table(tokens) * self.embed_scale  # (B, L, D)
        L = tokens.size(1)
        offset += self.cfg.position_offset
        if self.cfg.positions == "stored":
            stored = self.src_positions if side == "src" else self.tgt_positions
            return self.dropout(x + stored[offset:offset + L])
        return self.dropout(x + self.positions.rows(offset, L, x))

    # --- decoding interface -------------------------------------------------
    def encode(self, src: torch.Tensor) -> TransformerMemory | RowMemory:
        """src (B, S) right-padded token ids ending in EOS."""
        return encoder_memory(*self._encoded(src), self.cfg.n_heads, self.training)

    def _encoded(self, src: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The source's pad mask (B, S) and each decoder layer's cross-attention keys and values (B, S, D)."""
        pad_mask = src.ne(self.cfg.source_pad_id)  # (B, S)
        attn_mask = pad_mask[:, None, None, :]  # (B, 1, 1, S)
        x = self._embed("src", src)
        for layer in self.encoder:
            x = layer(x, attn_mask)
        if self.cfg.pre_norm:
            x = self.enc_norm(x)
        return pad_mask, [(layer.cross_attn.k_proj(x), layer.cross_attn.v_proj(x)) for layer in self.decoder]

    def init_state(self, memory: TransformerMemory | RowMemory) -> TransformerState | StepCache:
        """An empty self-attention cache. On CPU, in fp32, with the C kernels built, the StepCache that is
        read in place; elsewhere (GPU, half precision, no compiler) the TransformerState that is gathered."""
        B = memory.sentences
        # The embeddings' dtype is the compute dtype (linear layers may be int8-quantized modules).
        weight = self.src_embed.weight
        n = self.cfg.dec_layers
        if not self.training and cpu_kernels.apply_to(weight):
            return StepCache.empty(B, n)
        H, d = self.cfg.n_heads, self.cfg.d_model // self.cfg.n_heads
        empty = weight.new_zeros(B, H, 0, d)
        return TransformerState(self_k=(empty,) * n, self_v=(empty,) * n, step=0)

    def decode_step(self, prev_tokens: torch.Tensor, memory: TransformerMemory | RowMemory,
                    state: TransformerState | StepCache):
        """prev_tokens (B,) -> logits (B, V) for the next position, and the new state."""
        x = self._embed("tgt", prev_tokens[:, None], offset=state.step)  # (B, 1, D)
        caches = state.layers()
        for i, (layer, cross) in enumerate(zip(self.decoder, memory.layers(), strict=True)):
            # One query at the newest position sees every cached key: no causal mask needed.
            x, caches[i] = layer(x, caches[i], None, cross)
        if self.cfg.pre_norm:
            x = self.dec_norm(x)
        logits = self.output(x[:, 0])  # (B, V)
        return logits, state.advanced(caches)

    def fuse_for_decoding(self) -> None:
        """Inference only, in place: every self-attention computes q, k and v in one product
        (MultiHeadAttention.fuse_qkv). Decodes the same translations; loads and saves no checkpoints after."""
        for layer in (*self.encoder, *self.decoder):
            if layer.self_attn.qkv is None:
                layer.self_attn.fuse_qkv()

    def encoding_products(self) -> list[tuple[nn.Module, str]]:
        """(module, attribute) of every linear layer `encode` runs: the encoder's, and each decoder layer's
        cross-attention keys and values. They multiply every source token of a batch at once (thousands
        of rows), where a decoding step's products have one row per live beam; pipeline/runtime/blas.py gives
        them to the library that runs such products fastest."""
        pairs = [(m, name) for m in self.encoder.modules() for name, child in m.named_children()
                 if isinstance(child, nn.Linear)]
        return pairs + [(layer.cross_attn, name) for layer in self.decoder for name in ("k_proj", "v_proj")]

    def reorder(self, state: TransformerState | StepCache, index: torch.Tensor) -> TransformerState | StepCache:
        """Rows `index` of the state (lazily, see TransformerState and StepCache)."""
        return state.reordered(index)

    def cross_attention(self, src: torch.Tensor, tgt_in: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Teacher forcing, for alignment: src (B, S), tgt_in (B, T) starting with BOS -> the cross-attention
        weights (B, T, S) of decoder layer `layer`, averaged over its heads (float32). Row t is the attention
        of the position that predicts tgt_in[t + 1]; padded source positions get 0."""
        pad_mask, cross = self._encoded(src)
        memory = encoder_memory(pad_mask, cross, self.cfg.n_heads, training=True)  # the views as projected
        T = tgt_in.size(1)
        causal = torch.ones(T, T, dtype=torch.bool, device=tgt_in.device).tril()
        last = layer % len(self.decoder)
        x = self._embed("tgt", tgt_in)
        for i, (dec, part) in enumerate(zip(self.decoder, memory.layers(), strict=True)):
            if i == last:
                return dec.cross_weights(x, causal, part).mean(1)
            x, _ = dec(x, None, causal, part)
        raise AssertionError("unreachable")

    # --- training -----------------------------------------------------------
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, mix=None) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) starting with BOS -> logits (B, T, V).

        With `mix` (scheduled sampling, `training.scheduled_sampling.TokenMixer`): the two-pass
        approximation of Mihaylova and Martins (2019). A first pass under teacher forcing, without
        gradients, predicts every position; `mix` puts some of those predictions in place of the
        reference inputs; the second pass, the one trained, reads the mixed inputs. A Transformer
        decodes all positions at once, so this replaces the recurrent models' step-by-step mixing.
        """
        memory = self.encode(src)
        if mix is not None:
            with torch.no_grad():
                first = self._teacher_forced(tgt_in, memory)  # position t-1 predicts the input at t
            tgt_in = torch.cat([tgt_in[:, :1], mix(tgt_in[:, 1:], first[:, :-1])], dim=1)
        return self._teacher_forced(tgt_in, memory)

    def _teacher_forced(self, tgt_in: torch.Tensor, memory: TransformerMemory) -> torch.Tensor:
        T = tgt_in.size(1)
        causal = torch.ones(T, T, dtype=torch.bool, device=tgt_in.device).tril()  # (T, T)
        x = self._embed("tgt", tgt_in)
        for layer, cross in zip(self.decoder, memory.layers(), strict=True):
            x, _ = layer(x, None, causal, cross)
        if self.cfg.pre_norm:
            x = self.dec_norm(x)
        return self.output(x)
