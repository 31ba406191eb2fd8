"""The translate stage (an actor pool): id pieces -> n-best target ids, scores and per-row statistics.

Each actor loads its model (or ensemble) once, on the device the plan gives it (pipeline/plan.py).

Segments flagged MARKED (inline markup, --format html|markdown) also get ATTENTION: one teacher-forced pass
of the source and the chosen translation reads the last decoder layer's cross-attention, heads averaged
(`cross_attention`, model/architectures/contract.py), which places their tags (tags.py). An ensemble, an
RNN, the CTranslate2 engine, a split source or a forced target prefix give none (null): the tags are placed
without it.
"""

from __future__ import annotations

import os
import socket
import time
from functools import partial

import pyarrow as pa

from model.decoding import DecodeConfig
from pipeline.columns import (
    ATTENTION,
    HYP_IDS,
    MARKED,
    MEMORY,
    PIECES,
    ROUTE,
    ROW_STATS,
    STATUS,
    TARGET_PREFIX,
    RowStatus,
    StageColumns,
)
from pipeline.memory import MEMORY_COLUMN, MEMORY_TYPE, segment_keys
from pipeline.output import row_stats_array
from pipeline.runtime import peak_rss_mb
from pipeline.settings import CPU_MAX_TOKENS, check_precision


class Translator:
    """Actor: holds the model, decodes a large batch sorted by length in token-budget sub-batches."""

    def __init__(self, model_uri: str, decode: DecodeConfig, precision: str, max_tokens: int, torch_threads: int,
                 storage_options: dict, ensemble_uris: tuple[str, ...] = (), cpu_blas: str = "auto",
                 engine: str = "ours", cpu_streams: int = 0, gpus_per_actor: float = 0.0, reuse=None,
                 route: int = -1):
        self.device = actor_device(gpus_per_actor)
        check_precision(precision, on_gpu=self.device.type != "cpu")
        self.streams = setup_threads(self.device, engine, torch_threads, cpu_streams)
        self.decode, self.max_tokens = decode, max_tokens or (CPU_MAX_TOKENS if self.device.type == "cpu" else 0)
        self.budget = None  # GPU: the measured token budget (pipeline/runtime/gpu_budget.py), when max_tokens is 0
        self.actor_id = f"{socket.gethostname()}:{os.getpid()}"
        uris = [model_uri, *ensemble_uris]
        if engine == "ctranslate2":
            self.model = self.search_batch = load_ctranslate2(uris, decode, precision, self.device, storage_options)
        else:
            self.model = load_decoder(uris, precision, self.device, cpu_blas, storage_options)
            self.search_batch = None  # model.decoding.beam on self.model
        from model.decoding import Ensemble

        # What reads the chosen translations' cross-attention (MARKED segments); None: no alignment.
        self.aligner = None if engine == "ctranslate2" or isinstance(self.model, Ensemble) else self.model
        self._size_budget(gpus_per_actor)
        # Translations taken from the memory or from identical segments of the run (a ReuseSpec; None: decode
        # every row, as benchmarks and direct calls do).
        self.reuse = None
        if reuse is not None:
            from pipeline.memory import Reuse

            self.reuse = Reuse(reuse)
        # --model-for: this pool decodes the rows of its route and passes the others on (pipeline/languages/
        # routing.py); -1: every row
        self.route = route
        self.columns = self.declare(reuse is not None, route)

    @staticmethod
    def declare(reuse: bool, route: int = -1, marked: bool = False) -> StageColumns:
        """Reads the pieces (and TARGET_PREFIX, when there); with reuse it also records MEMORY; with MARKED rows
        (`marked`) it writes their ATTENTION. A routed pool also reads the route and keeps the pieces for the
        pools after it; its rows' tags are placed without attention (tags.py's other rules)."""
        writes = (HYP_IDS, "score", "nbest_scores", ROW_STATS, *((MEMORY,) if reuse else ()))
        if route >= 0:
            return StageColumns(f"translate (route {route})", (PIECES, STATUS, ROUTE), writes=writes)
        marks = (MARKED,) if marked else ()
        return StageColumns("translate", (PIECES, STATUS, *marks), drops=(PIECES, TARGET_PREFIX, *marks),
                            writes=(*writes, *((ATTENTION,) if marked else ())))

    def __call__(self, table: pa.Table) -> pa.Table:
        if self.route < 0:
            return self._translate(table)
        from pipeline.languages import merge_rows, route_indices

        self.columns.check(table)
        rows = route_indices(table, self.route)
        if not rows:
            return table
        written = [STATUS, HYP_IDS, "score", "nbest_scores", ROW_STATS, *((MEMORY,) if self.reuse else ())]
        mine = table.take(pa.array(rows, pa.int64()))  # without what the pools before this one wrote
        part = self._translate(mine.drop_columns([c for c in (*written[1:], MARKED) if c in mine.column_names]))
        return merge_rows(table, rows, part, written)

    def _size_budget(self, gpus_per_actor: float) -> None:
        """A GPU actor without a set budget measures one from its share of the GPU (pipeline/runtime/gpu_budget.py)."""
        if self.max_tokens:
            return
        from functools import partial

        from model.decoding import search
        from pipeline.runtime import measure_budget

        searcher = self.search_batch or partial(search, self.model)
        self.budget = measure_budget(searcher, self.decode, self.device, gpus_per_actor, self.model.cfg)
        self.max_tokens = self.budget.budget
        print(f"model actor {self.actor_id} on {torch_device_name(self.device)}: token budget {self.max_tokens:,} "
              f"({self.budget.bytes_per_token / 1024:.1f} KiB per token measured, "
              f"{self.budget.available / 2**30:.1f} GiB of its {gpus_per_actor:g} GPU usable)", flush=True)

    def _translate(self, table: pa.Table) -> pa.Table:
        self.columns.check(table)
        started = time.perf_counter()
        rows = table.column(PIECES).to_pylist()
        # Forced target-language tokens, per row (multilingual models).
        row_prefix = table.column(TARGET_PREFIX).to_pylist() if TARGET_PREFIX in table.column_names else None
        n = len(rows)
        cost: dict[int, tuple[int, int]] = {}  # row -> (target tokens decoded, padded source tokens)
        decode = partial(self._decode, rows, row_prefix, cost)
        labels: list = [None] * n
        if self.reuse is None:
            outcomes = decode([r for r in range(n) if rows[r]])
        else:
            keys = segment_keys(self.reuse.spec.fingerprint, rows, row_prefix)
            outcomes, labels = self.reuse.resolve(keys, decode)
        status = table.column(STATUS).to_pylist()
        empty = {"hyp_ids": [[]], "score": None, "nbest_scores": [], "length_limited": False}
        per_row = [outcomes.get(r, empty) for r in range(n)]
        for r, outcome in enumerate(per_row):
            if outcome["length_limited"]:  # the translation holds a piece cut at the limit
                status[r] = RowStatus.LENGTH_LIMIT
        # As fed: truncated, one EOS per piece; rows reused instead of decoded cost nothing.
        src_tokens = [sum(len(p) for p in pieces) if r in cost else 0 for r, pieces in enumerate(rows)]
        stats = row_stats_array(src_tokens, [cost.get(r, (0, 0))[0] for r in range(n)],
                                [cost.get(r, (0, 0))[1] for r in range(n)],
                                (time.perf_counter() - started) / max(n, 1), peak_rss_mb(), self.actor_id)
        table = table.set_column(table.column_names.index(STATUS), STATUS, pa.array(status, pa.string()))
        table = (table.drop_columns([c for c in (PIECES, TARGET_PREFIX) if c in table.column_names])
                 .append_column(HYP_IDS, pa.array([o["hyp_ids"] for o in per_row], pa.list_(pa.list_(pa.int32()))))
                 .append_column("score", pa.array([o["score"] for o in per_row], pa.float64()))
                 .append_column("nbest_scores", pa.array([o["nbest_scores"] for o in per_row],
                                                         pa.list_(pa.float64())))
                 .append_column(ROW_STATS, stats))
        if MARKED in table.column_names:
            attention = self._attention(table.column(MARKED).to_pylist(), rows, row_prefix, per_row)
            table = (table.drop_columns([MARKED])
                     .append_column(ATTENTION, pa.array(attention, pa.list_(pa.float32()))))
        if self.reuse is not None:
            memo = [None if k is None else {"key": k, "reuse": how, **per_row[r]}
                    for r, (k, how) in enumerate(zip(keys, labels, strict=True))]
            table = table.append_column(MEMORY_COLUMN, pa.array(memo, MEMORY_TYPE))
        return table

    def _attention(self, marked: list, rows: list, row_prefix: list | None, per_row: list[dict],
                   batch_rows: int = 32) -> list:
        """Per row: the cross-attention its best translation pays its source, flattened (target pieces x source
        pieces, EOS left out), for the MARKED rows that have it (one piece, no forced prefix); else None."""
        import torch

        out: list = [None] * len(rows)
        which = [r for r, m in enumerate(marked) if m and self.aligner is not None and len(rows[r]) == 1
                 and per_row[r]["hyp_ids"] and per_row[r]["hyp_ids"][0]
                 and not (row_prefix is not None and row_prefix[r])]
        if not which:
            return out
        which.sort(key=lambda r: len(rows[r][0]) + len(per_row[r]["hyp_ids"][0]))
        cfg = self.aligner.cfg
        for at in range(0, len(which), batch_rows):
            batch = which[at:at + batch_rows]
            srcs = [rows[r][0] for r in batch]
            tgts = [[cfg.bos_id, *per_row[r]["hyp_ids"][0]] for r in batch]
            src = torch.full((len(batch), max(map(len, srcs))), cfg.source_pad_id, dtype=torch.long)
            tgt = torch.full((len(batch), max(map(len, tgts))), cfg.pad_id, dtype=torch.long)
            for i, (s_ids, t_ids) in enumerate(zip(srcs, tgts, strict=True)):
                src[i, :len(s_ids)], tgt[i, :len(t_ids)] = torch.tensor(s_ids), torch.tensor(t_ids)
            with torch.inference_mode():
                weights = self.aligner.cross_attention(src.to(self.device), tgt.to(self.device))
            if weights is None:
                return out
            weights = weights.float().cpu()
            for i, r in enumerate(batch):  # row t predicts target piece t; the source without its EOS
                out[r] = weights[i, :len(tgts[i]) - 1, :len(srcs[i]) - 1].reshape(-1).tolist()
        return out

    def _decode(self, rows: list, row_prefix: list | None, cost: dict, which: list[int]) -> dict[int, dict]:
        """Decode rows `which` (each a list of pieces) in token-budget batches: row -> its outcome (n-best ids,
        score, n-best scores, whether a piece stopped at the length limit); `cost` gets each row's decoded
        target tokens and padded source width."""
        from model.decoding import translate_ids

        flat = [(r, piece) for r in which for piece in rows[r]]
        prefixes = [row_prefix[r] for r, _ in flat] if row_prefix is not None else None
        hyps, widths = translate_ids(self.model, [p for _, p in flat], self.decode, self.max_tokens, self.device,
                                     prefixes=prefixes, search_batch=self.search_batch, streams=self.streams)
        pieces: dict[int, list] = {r: [] for r in which}
        padded = dict.fromkeys(which, 0)
        for (r, _), h, w in zip(flat, hyps, widths, strict=True):
            pieces[r].append(h)
            padded[r] += w
        out = {}
        for r, hs in pieces.items():
            if len(hs) == 1:
                nbest, score, nbest_scores = [h.tokens for h in hs[0]], hs[0][0].score, [h.score for h in hs[0]]
            else:  # split source: the best hypothesis of each piece, concatenated
                score = sum(p[0].score for p in hs) / len(hs)
                nbest, nbest_scores = [[t for p in hs for t in p[0].tokens]], [score]
            out[r] = {"hyp_ids": nbest, "score": score, "nbest_scores": nbest_scores,
                      "length_limited": any(p[0].length_limited for p in hs)}
            # What was decoded: every piece's best hypothesis and its EOS.
            cost[r] = (sum(len(p[0].tokens) + 1 for p in hs), padded[r])
        return out


def setup_threads(device, engine: str, torch_threads: int, cpu_streams: int) -> int:
    """A CPU actor's threads set up (pipeline/runtime/cpu_decoding.py); returns how many batches it decodes at
    once: `streams` batches, each on torch_threads / streams threads (CTranslate2 spreads its own threads). A
    GPU actor decodes one batch at a time."""
    if device.type != "cpu":
        return 1
    from model.decoding import decode_streams
    from pipeline.runtime import setup_cpu_process

    streams = 1
    if engine == "ours":
        streams, torch_threads = decode_streams(torch_threads, cpu_streams)
    setup_cpu_process(torch_threads)
    return streams


def load_decoder(uris: list[str], precision: str, device, cpu_blas: str, storage_options: dict):
    """The model (several: an ensemble averaging their log-probabilities at every step, as Sutskever et al.
    2014 did with 5) in `precision` on `device`, prepared for decoding there."""
    import torch

    from model.decoding import Ensemble, prepare_for_decoding
    from model.formats import load_model

    # int8 loads fp32 weights and quantizes the linear layers (a CPU-only path).
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}[precision]
    ckpts = [load_model(uri, device=device, dtype=dtype, storage_options=storage_options) for uri in uris]
    check_same_vocabularies(uris, [c.tokenizer for c in ckpts])
    if device.type == "cpu":
        from pipeline.runtime import for_cpu_decoding

        models = [for_cpu_decoding(c.model, precision, cpu_blas, torch.get_num_threads()) for c in ckpts]
    else:
        models = [c.model for c in ckpts]
        for m in models:
            prepare_for_decoding(m)
    return models[0] if len(models) == 1 else Ensemble(models)


def load_ctranslate2(uris: list[str], decode: DecodeConfig, precision: str, device, storage_options: dict):
    """--engine ctranslate2: the model converted once (from fp32 weights on the CPU), then decoded by
    CTranslate2 (pipeline/runtime/ct2_engine.py); single models only."""
    import torch

    from model.formats import load_model
    from pipeline.runtime import CTranslate2Engine, check_supported

    ckpt = load_model(uris[0], storage_options=storage_options)
    check_supported(ckpt.model, decode, ensemble=len(uris) > 1)
    return CTranslate2Engine(ckpt.model, ckpt.tokenizer, decode, precision, device.type, torch.get_num_threads())


GPU_STANDIN = "NMT_GPU_STANDIN"  # "cpu": GPU actors without CUDA decode on the CPU (tests of GPU scheduling)


def actor_device(gpus_per_actor: float):
    """Where a model actor decodes: the plan decides, not what the node has. A CPU actor on a GPU node
    must not take GPU 0 unreserved (Ray gives a GPU actor its own devices in CUDA_VISIBLE_DEVICES; to
    the others it gives none, but a process started outside Ray sees every GPU)."""
    import torch

    if not gpus_per_actor:
        return torch.device("cpu")
    if os.environ.get(GPU_STANDIN) == "cpu" and not torch.cuda.is_available():
        # Scheduling tests on machines without GPUs: nodes declare logical GPUs to Ray (ray start
        # --num-gpus), and an actor that reserved one decodes on the CPU.
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"this actor reserved {gpus_per_actor:g} GPU but sees no CUDA device (torch "
                           f"{torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): "
                           "install a CUDA build of torch on the GPU nodes")
    return torch.device("cuda", torch.cuda.current_device())


def torch_device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def check_same_vocabularies(uris: list[str], tokenizers: list) -> None:
    """Ensemble members must map text to ids alike on both sides, not only share a target vocabulary."""
    first = tokenizers[0].vocab_fingerprint()
    for uri, tok in zip(uris[1:], tokenizers[1:], strict=True):
        for side, a, b in zip(("source", "target"), first, tok.vocab_fingerprint(), strict=True):
            if a != b:
                raise ValueError(f"ensemble member {uri} has another {side} vocabulary than {uris[0]}")
