"""Recurrent encoder-decoder: the 2014-2015 systems this project descends from.

- attention="none": Sutskever et al. (2014) / Cho et al. (2014). The decoder
  starts from the encoder's final state and sees nothing else of the source.
  Sutskever reversed the source (`reverse_source=True`) and gained ~3 BLEU:
  the first source words end up close to the first target words.
- attention="bahdanau": additive attention (Bahdanau et al., 2014). The
  previous decoder state scores every encoder state; the context feeds the
  recurrent input.
- attention="luong_dot" / "luong_general": multiplicative attention (Luong et
  al., 2015, global attention). The current decoder state scores the encoder
  states; the context and the state make the attentional hidden state.
  Without input feeding the decoder RNN runs over the whole target at once
  during training. With `input_feeding=True` (Luong 2015, section 3.3) each
  step's attentional vector is concatenated to the next step's input, so the
  model knows which source words it has already attended to; the decoder then
  runs step by step.

Same decoding interface as `model.architectures.transformer.Transformer`.
Letters in shape comments: B batch, S source length, T target length,
V vocabulary, E embedding dim, H hidden dim, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.architectures.row_selection import select_rows

ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general")


@dataclass(frozen=True)
class RNNConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    cell: str = "lstm"  # "lstm" or "gru"
    attention: str = "bahdanau"  # one of ATTENTIONS
    emb_dim: int = 256
    hidden_dim: int = 512
    num_layers: int = 2
    bidirectional: bool = True
    reverse_source: bool = False
    # Luong's input feeding: the attentional vector of step t is part of the input of step t+1.
    input_feeding: bool = False
    dropout: float = 0.2
    share_embeddings: bool = True
    tie_output: bool = True
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3

    @property
    def source_pad_id(self) -> int:
        return self.pad_id

    @property
    def max_positions(self) -> int:
        return 0  # a recurrent model has no position table: any length

    def __post_init__(self):
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError("share_embeddings needs src_vocab_size == tgt_vocab_size")
        if self.input_feeding and not self.attention.startswith("luong"):
            # Bahdanau's decoder already reads the context at every step; without attention there
            # is no attentional vector to feed.
            raise ValueError(f"input_feeding needs Luong attention, got attention={self.attention!r}")


@dataclass
class RNNMemory:
    values: torch.Tensor  # (B, S, H) encoder states projected to the decoder size
    keys: torch.Tensor  # (B, S, H) what attention scores against (precomputed once)
    pad_mask: torch.Tensor  # (B, S) True at real tokens
    init_hidden: torch.Tensor  # (B, L, H) decoder start state from the encoder's final state
    init_cell: torch.Tensor | None  # (B, L, H) for LSTM


@dataclass
class RNNState:
    hidden: torch.Tensor  # (B, L, H); batch first so every state tensor reorders on dim 0
    cell: torch.Tensor | None  # (B, L, H) for LSTM, None for GRU
    feed: torch.Tensor | None = None  # (B, E) last attentional vector, with input feeding only


def reverse_padded(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `lengths - 1` tokens, keeping the final EOS and the padding in place."""
    B, S = tokens.shape
    pos = torch.arange(S, device=tokens.device)[None, :].expand(B, S)
    n = (lengths - 1)[:, None]
    src_pos = torch.where(pos < n, n - 1 - pos, pos)  # (B, S)
    return tokens.gather(1, src_pos)


class Attention(nn.Module):
    """Scores a decoder state (B, H) against keys (B, S, H) and returns a context (B, H)."""

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "bahdanau":
            self.query = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pad_mask):
        """query (B, Tq, H), keys/values (B, S, H) -> context (B, Tq, H)."""
        if self.kind == "bahdanau":
            # e_ij = v^T tanh(W s_i + U h_j)   (Bahdanau 2014, eq. 6; U h_j precomputed)
            energy = torch.tanh(self.query(query)[:, :, None, :] + keys[:, None, :, :])  # (B, Tq, S, H)
            scores = self.v(energy).squeeze(-1)  # (B, Tq, S)
        else:
            # dot: s_i . h_j ; general: s_i . W h_j (W folded into the keys)   (Luong 2015, eq. 8)
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, Tq, S)
        scores = scores.masked_fill(~pad_mask[:, None, :], float("-inf"))
        return torch.bmm(F.softmax(scores, dim=-1), values)  # (B, Tq, H)


class RNNSeq2Seq(nn.Module):
    arch = "rnn"
    # Each beam gets its own copy of the encoder memory (select_rows); the Luong/Bahdanau attention reads it
    # as a batch, without the Transformer's row index.
    shares_memory_across_beams = False

    def __init__(self, cfg: RNNConfig):
        super().__init__()
        self.cfg = cfg
        H, E, L = cfg.hidden_dim, cfg.emb_dim, cfg.num_layers
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        dirs = 2 if cfg.bidirectional else 1
        self.src_embed = nn.Embedding(cfg.src_vocab_size, E, padding_idx=cfg.pad_id)
        if cfg.share_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = nn.Embedding(cfg.tgt_vocab_size, E, padding_idx=cfg.pad_id)
        self.encoder = rnn(
            E,
            H,
            L,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if L > 1 else 0.0,
        )
        # Encoder states (dirs*H) -> decoder size H, and final states -> decoder start state.
        self.memory_proj = nn.Linear(dirs * H, H) if dirs > 1 else None
        self.bridge = nn.Linear(dirs * H, H)
        self.attn = Attention(cfg.attention, H) if cfg.attention != "none" else None
        # Bahdanau's U h_j and Luong-general's W h_j depend only on the source: keys computed once.
        needs_keys = cfg.attention in ("bahdanau", "luong_general")
        self.key_proj = nn.Linear(H, H, bias=False) if needs_keys else None
        dec_in = E + H if cfg.attention == "bahdanau" else E + E if cfg.input_feeding else E
        self.decoder = rnn(dec_in, H, L, batch_first=True, dropout=cfg.dropout if L > 1 else 0.0)
        readout_in = H if cfg.attention == "none" else 2 * H
        # Readout to the embedding size so the output layer can be tied to the embeddings.
        self.readout = nn.Linear(readout_in, E)
        self.output = nn.Linear(E, cfg.tgt_vocab_size)
        if cfg.tie_output:
            self.output.weight = self.tgt_embed.weight
        self.dropout = nn.Dropout(cfg.dropout)

    # --- encoder --------------------------------------------------------------
    def fuse_for_decoding(self) -> None:
        """Nothing to fuse: the recurrent cells are already one product per step (torch's LSTM/GRU kernels)."""

    def encoding_products(self) -> list[tuple[nn.Module, str]]:
        return []  # the bidirectional encoder is one cuDNN/MKL RNN call: no linear layer to move to OpenBLAS

    def encode(self, src: torch.Tensor) -> RNNMemory:
        cfg = self.cfg
        pad_mask = src.ne(cfg.pad_id)  # (B, S)
        lengths = pad_mask.sum(1)
        if cfg.reverse_source:
            src = reverse_padded(src, lengths)
        x = self.dropout(self.src_embed(src))  # (B, S, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        values = self.memory_proj(out) if self.memory_proj is not None else out  # (B, S, H)
        keys = self.key_proj(values) if self.key_proj is not None else values
        h_n, c_n = final if cfg.cell == "lstm" else (final, None)
        return RNNMemory(
            values=values,
            keys=keys,
            pad_mask=pad_mask,
            init_hidden=self._bridge(h_n),
            init_cell=self._bridge(c_n) if c_n is not None else None,
        )

    def _bridge(self, final: torch.Tensor) -> torch.Tensor:
        """(L*dirs, B, H) final encoder states -> (B, L, H) decoder start states, layer by layer."""
        L, dirs = self.cfg.num_layers, 2 if self.cfg.bidirectional else 1
        B, H = final.size(1), final.size(2)
        final = final.view(L, dirs, B, H).permute(2, 0, 1, 3).reshape(B, L, dirs * H)
        return torch.tanh(self.bridge(final))

    # --- decoder --------------------------------------------------------------
    def init_state(self, memory: RNNMemory) -> RNNState:
        feed = None
        if self.cfg.input_feeding:  # nothing attended yet: zeros (Luong 2015; OpenNMT)
            feed = memory.init_hidden.new_zeros(memory.init_hidden.size(0), self.cfg.emb_dim)
        return RNNState(hidden=memory.init_hidden, cell=memory.init_cell, feed=feed)

    def _run_decoder(self, inputs: torch.Tensor, state: RNNState):
        """inputs (B, T, in) -> outputs (B, T, H) and the state after the last step."""
        h = state.hidden.transpose(0, 1).contiguous()  # (L, B, H) as torch RNNs want
        if self.cfg.cell == "lstm":
            out, (h, c) = self.decoder(inputs, (h, state.cell.transpose(0, 1).contiguous()))
            return out, RNNState(h.transpose(0, 1), c.transpose(0, 1))
        out, h = self.decoder(inputs, h)
        return out, RNNState(h.transpose(0, 1), None)

    def _attentional(self, features: torch.Tensor) -> torch.Tensor:
        """[state; context] -> Luong's attentional vector tanh(W_c [h; c]) (after dropout), size E."""
        return self.dropout(torch.tanh(self.readout(self.dropout(features))))

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self._attentional(features))

    def _steps(self, emb: torch.Tensor, memory: RNNMemory, state: RNNState):
        """Decoder over target embeddings emb (B, T, E) -> logits (B, T, V), final state."""
        kind = self.cfg.attention
        if kind == "bahdanau":
            # The context for step t depends on the state after t-1: step by step.
            logits = []
            for t in range(emb.size(1)):
                query = state.hidden[:, -1:, :]  # (B, 1, H) top layer
                ctx = self.attn(query, memory.keys, memory.values, memory.pad_mask)  # (B, 1, H)
                out, state = self._run_decoder(torch.cat([emb[:, t : t + 1], ctx], dim=-1), state)
                logits.append(self._logits(torch.cat([out, ctx], dim=-1)))
            return torch.cat(logits, dim=1), state
        if self.cfg.input_feeding:
            # The input of step t holds the attentional vector of step t-1: step by step.
            logits = []
            for t in range(emb.size(1)):
                out, state = self._run_decoder(torch.cat([emb[:, t : t + 1], state.feed[:, None]], dim=-1), state)
                ctx = self.attn(out, memory.keys, memory.values, memory.pad_mask)  # (B, 1, H)
                att = self._attentional(torch.cat([out, ctx], dim=-1))  # (B, 1, E)
                logits.append(self.output(att))
                state = RNNState(state.hidden, state.cell, feed=att[:, 0])
            return torch.cat(logits, dim=1), state
        out, state = self._run_decoder(emb, state)  # (B, T, H)
        if kind == "none":
            return self._logits(out), state
        ctx = self.attn(out, memory.keys, memory.values, memory.pad_mask)  # (B, T, H)
        return self._logits(torch.cat([out, ctx], dim=-1)), state

    def decode_step(self, prev_tokens: torch.Tensor, memory: RNNMemory, state: RNNState):
        """prev_tokens (B,) -> logits (B, V), new state."""
        emb = self.dropout(self.tgt_embed(prev_tokens[:, None]))  # (B, 1, E)
        logits, state = self._steps(emb, memory, state)
        return logits[:, 0], state

    def reorder(self, state, index: torch.Tensor):
        return select_rows(state, index)

    # --- training -------------------------------------------------------------
    def cross_attention(self, src: torch.Tensor, tgt_in: torch.Tensor, layer: int = -1) -> None:
        """No alignment is read from the RNN (its attention is one vector per step, not kept): inline markup
        is placed without it."""
        return None

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, mix=None) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) starting with BOS -> logits (B, T, V).

        With `mix` (scheduled sampling, Bengio et al. 2015; `training.scheduled_sampling.TokenMixer`)
        the decoder runs step by step and the input of step t is the reference token or, where `mix`
        says so, the model's own prediction from step t-1, as at inference.
        """
        memory = self.encode(src)
        state = self.init_state(memory)
        if mix is None:
            logits, _ = self._steps(self.dropout(self.tgt_embed(tgt_in)), memory, state)  # (B, T, V)
            return logits
        steps = []
        for t in range(tgt_in.size(1)):
            tokens = tgt_in[:, :1] if t == 0 else mix(tgt_in[:, t : t + 1], steps[-1].detach())  # (B, 1)
            step, state = self._steps(self.dropout(self.tgt_embed(tokens)), memory, state)
            steps.append(step)
        return torch.cat(steps, dim=1)
