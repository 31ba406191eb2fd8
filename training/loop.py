"""The Ray Train worker loop: DDP over token-budget batches streamed from Ray Data.

Every worker runs `train_worker`. Batches differ in size and count between
workers, so each update starts with one small all-reduce of (has data, target
tokens): the update's loss is normalized by the tokens of all workers, and a
worker that has run out of data joins with a zero-weight batch until every
worker is out, so no example of the epoch is skipped and DDP never hangs.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from itertools import islice

import torch
import torch.distributed as dist

from model.architectures import label_smoothed_loss
from model.decoding import DecodeConfig
from model.formats import build_model, load_checkpoint, save_checkpoint
from model.storage import resolve
from model.tokenizers import PAD_ID, UNK_ID, load_tokenizer_dir
from pipeline.io import join, read_table, write_bytes_atomic
from training.data import DROP_REASONS, make_batch, token_batches
from training.scheduled_sampling import TokenMixer
from training.state import TrainState, inverse_sqrt_lr, load_training_state, save_training_state
from training.validate import validation_bleu, validation_loss


def _all_reduce(values: list[float], device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def batch_loss(model, batch, label_smoothing: float, mix: TokenMixer | None = None):
    """(label-smoothed loss sum, NLL sum) of one batch: teacher forcing, or scheduled sampling with `mix`."""
    logits = model(batch.src, batch.tgt_in, mix=mix)
    loss, nll, _ = label_smoothed_loss(logits, batch.tgt_out, PAD_ID, label_smoothing)
    return loss, nll


class Trainer:
    """State and steps of one worker; `run()` trains until the configured end."""

    def __init__(self, cfg, arch: str, model_config: dict):
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.cfg, self.arch = cfg, arch
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        if self.device.type == "cpu" and cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.tokenizer = load_tokenizer_dir(cfg.tokenizer, cfg.storage_options)
        # On the device before the optimizer exists, so restored optimizer state lands there too.
        self.model = build_model(arch, model_config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9,
                                          weight_decay=cfg.weight_decay)
        self.state = TrainState()
        # Where the weights of a --init-model run came from, with that model's own training record,
        # so a card can give the whole training time and history.
        self.initialized_from: dict | None = None
        resumed = ray.train.get_checkpoint()
        if resumed:
            with resumed.as_directory() as d:
                ckpt = load_checkpoint(d)
                self.model.load_state_dict(ckpt.model.state_dict())
                self.state = load_training_state(d, self.optimizer)
                self.initialized_from = ckpt.metadata.get("initialized_from")
            self.log(f"resumed from step {self.state.step} (epoch {self.state.epoch + 1}, "
                     f"{self.state.updates_in_epoch} updates into it)")
        elif cfg.init_model:  # a resumed run already holds the trained-on weights
            init = load_checkpoint(cfg.init_model, storage_options=cfg.storage_options)
            self.model.load_state_dict(init.model.state_dict())
            self.initialized_from = {"model": cfg.init_model, **{k: init.metadata[k] for k in
                                                               ("training", "initialized_from") if k in init.metadata}}
            self.log(f"initialized from {cfg.init_model}")
        self.ddp = ray.train.torch.prepare_model(self.model)
        self.dropped: Counter = Counter()  # this epoch, this worker
        self.dropped_last_epoch: Counter | None = None
        self.valid = self._load_valid() if self.rank == 0 and cfg.valid else None
        self.window = self._new_window()
        self.since_report = [0.0, 0.0]  # label-smoothed loss sum, target tokens (this worker)
        self.history_uri = join(cfg.output, "training_log.jsonl")

    def log(self, msg: str) -> None:
        if self.rank == 0:
            # Not print(): Ray Train patches print and, in workers, emits each line twice.
            sys.stdout.write(f"[train] {msg}\n")
            sys.stdout.flush()

    def _load_valid(self):
        cfg = self.cfg
        target = cfg.valid_target_column or cfg.target_column
        table = read_table(cfg.valid, [cfg.source_column, target], cfg.storage_options)
        if cfg.valid_max_sentences:
            table = table.slice(0, cfg.valid_max_sentences)
        sources = [s or "" for s in table.column(cfg.source_column).to_pylist()]
        refs = [r or "" for r in table.column(target).to_pylist()]
        pairs = list(zip(self.tokenizer.source.encode(sources), self.tokenizer.encode_target(refs), strict=True))
        return {"sources": sources, "refs": refs, "pairs": [(s, t) for s, t in pairs if s and t]}

    # --- one update -------------------------------------------------------------
    def _autocast(self):
        mode = self.cfg.autocast
        if mode == "bf16" or (mode == "auto" and self.device.type == "cuda"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def update(self, group: list) -> bool:
        """One optimizer update over this worker's micro-batches; False when all workers are out of data."""
        has_data, local_tokens = (1.0 if group else 0.0), float(sum(b.n_tokens for b in group))
        any_data, total_tokens = _all_reduce([has_data, local_tokens], self.device)
        if not any_data:
            return False
        weight = 1.0
        if not group:  # out of data while others are not: join the all-reduce with zero weight
            group, weight = [make_batch([([UNK_ID], [UNK_ID])])], 0.0
        lr = inverse_sqrt_lr(self.state.step + 1, self.cfg.lr, self.cfg.warmup)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        # DDP averages gradients over workers; scale so the result is sum(loss) / all tokens.
        scale = weight * self.world / total_tokens
        # One seed per (worker, update): the draws differ between workers and repeat after a resume.
        mix = self.cfg.sampling.mixer(self.state.step, self.cfg.seed * 1009 + self.rank, self.device, PAD_ID)
        for i, batch in enumerate(group):
            batch = batch.to(self.device)
            sync = i == len(group) - 1 or not hasattr(self.ddp, "no_sync")
            with contextlib.nullcontext() if sync else self.ddp.no_sync(), self._autocast():
                loss, nll = batch_loss(self.ddp, batch, self.cfg.label_smoothing, mix)
            (loss * scale).backward()
            self.window["loss"] += float(loss.detach()) * weight
            self.window["nll"] += float(nll) * weight
            self.since_report[0] += float(loss.detach()) * weight
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.state.updates_in_epoch += 1
        self.state.target_tokens += int(total_tokens)
        self.window["tokens"] += int(local_tokens)
        if mix is not None and weight:
            sampled, eligible = mix.counts
            self.window["sampled"] += sampled
            self.window["eligible"] += eligible
        self.since_report[1] += local_tokens
        return True

    # --- progress, validation, checkpoints -----------------------------------------
    def log_progress(self) -> None:
        w = self.window
        loss, nll, tokens, sampled, eligible = _all_reduce(
            [w["loss"], w["nll"], w["tokens"], w["sampled"], w["eligible"]], self.device)
        dt = time.time() - w["t0"]
        lr = self.optimizer.param_groups[0]["lr"]
        dropped = self.dropped_all_workers()
        # The share of target inputs that were the model's own tokens (scheduled sampling), when on.
        sampling_on = self.cfg.sampling.scheduled_sampling != "none"
        own = f" | own tokens {sampled / max(eligible, 1):.1%}" if sampling_on else ""
        self.log(f"step {self.state.step} | epoch {self.state.epoch + 1} | loss {loss / max(tokens, 1):.3f} | "
                 f"nll {nll / max(tokens, 1):.3f} | lr {lr:.2e} | {tokens / dt:,.0f} tgt tok/s | "
                 f"dropped pairs {dropped or 0}{own}")
        self.window = self._new_window()

    @staticmethod
    def _new_window() -> dict:
        return {"loss": 0.0, "nll": 0.0, "tokens": 0, "sampled": 0, "eligible": 0, "t0": time.time()}

    def validate_and_report(self, seconds: float) -> bool:
        """Validate on rank 0, checkpoint through Ray Train (all ranks). True if training should stop."""
        import ray.train

        self.state.seconds += seconds
        loss_sum, tokens = _all_reduce(self.since_report, self.device)
        self.since_report = [0.0, 0.0]
        # seconds: training time so far (resumes included), so a log says what each point on the curve cost.
        metrics = {"step": self.state.step, "epoch": self.state.epoch, "target_tokens": self.state.target_tokens,
                   "seconds": round(self.state.seconds, 1), "lr": self.optimizer.param_groups[0]["lr"],
                   "train_loss": loss_sum / max(tokens, 1.0),
                   "teacher_forcing_rate": self.cfg.sampling.teacher_forcing_rate(self.state.step),
                   "dropped": self.dropped_all_workers()}
        stop = 0.0
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                metrics.update(self._validate())
                self._save(tmp, metrics)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
                patience = self.cfg.patience
                stop = float(bool(patience) and self.state.bad_validations >= patience)
            ray.train.report({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
                             checkpoint=checkpoint)
        if self.rank == 0:
            self._append_history(metrics)
        return bool(_all_reduce([stop], self.device)[0])

    def dropped_all_workers(self) -> dict[str, int]:
        """Pairs filtered out in the last full epoch (the current one until one has finished)."""
        source = self.dropped_last_epoch if self.dropped_last_epoch is not None else self.dropped
        counts = _all_reduce([source[r] for r in DROP_REASONS], self.device)
        return {r: int(c) for r, c in zip(DROP_REASONS, counts, strict=True) if c}

    def _append_history(self, metrics: dict) -> None:
        """<output>/training_log.jsonl: one line per validation, kept across resumes (rewritten whole:
        object stores cannot append)."""
        fs, path = resolve(self.history_uri, self.cfg.storage_options)
        old = fs.cat_file(path).decode() if fs.exists(path) else ""
        line = json.dumps({k: v for k, v in metrics.items() if k != "val_sample"}, sort_keys=True)
        write_bytes_atomic(fs, path, (old + line + "\n").encode())

    def _validate(self) -> dict:
        if self.valid is None:
            return {}
        cfg, t0 = self.cfg, time.time()
        out = validation_loss(self.model, self.valid["pairs"], cfg.max_tokens, self.device)
        decode = DecodeConfig(beam_size=cfg.valid_beam_size)  # the translation job's other defaults
        out.update(validation_bleu(self.model, self.tokenizer, self.valid["sources"], self.valid["refs"],
                                   decode, cfg.valid_max_tokens, self.device))
        improved = out["val_bleu"] > self.state.best_bleu
        if improved:
            self.state.best_bleu, self.state.best_step, self.state.bad_validations = out["val_bleu"], self.state.step, 0
        else:
            self.state.bad_validations += 1
        self.log(f"validation step {self.state.step} | nll {out['val_nll']:.3f} | ppl {out['val_ppl']:.2f} | "
                 f"BLEU {out['val_bleu']:.2f}{' (best)' if improved else ''} | {time.time() - t0:.1f} s | "
                 f"e.g. {out['val_sample'][0]!r}")
        out["improved"] = improved
        return out

    def _save(self, directory: str, metrics: dict) -> None:
        meta = {"training": {"step": self.state.step, "epoch": self.state.epoch,
                             "target_tokens": self.state.target_tokens, "seconds": round(self.state.seconds, 1),
                             "workers": self.world, "device": str(self.device)},
                "validation": {k: metrics[k] for k in ("val_nll", "val_bleu", "val_bleu_signature") if k in metrics},
                "train_config": self.cfg_summary()}
        if self.initialized_from:
            meta["initialized_from"] = self.initialized_from
        save_checkpoint(directory, self.model, self.tokenizer, metadata=meta)
        save_training_state(directory, self.optimizer, self.state)
        if metrics.get("improved"):
            save_checkpoint(join(self.cfg.output, "best"), self.model, self.tokenizer, metadata=meta,
                            storage_options=self.cfg.storage_options)

    def cfg_summary(self) -> dict:
        from model.config_fields import redacted

        return json.loads(json.dumps(redacted(self.cfg)))

    # --- the loop -----------------------------------------------------------------------
    def batches(self):
        import ray.train

        cfg = self.cfg
        rng = random.Random(cfg.seed * 100_003 + self.state.epoch * 7919 + self.rank)
        rows = ray.train.get_dataset_shard("train").iter_batches(
            batch_size=cfg.read_rows, batch_format="numpy", local_shuffle_buffer_size=cfg.shuffle_rows or None)
        it = token_batches(rows, cfg.max_tokens, cfg.max_len, cfg.pool_rows, rng, self.dropped)
        # After a resume, skip what the interrupted epoch already trained on (by count: Ray Data's
        # streaming split does not promise the same rows per worker on a re-run).
        for _ in islice(it, self.state.updates_in_epoch * cfg.update_freq):
            pass
        return it

    def run(self) -> None:
        cfg = self.cfg
        stop = self.state.step >= cfg.max_steps > 0
        last_report = self.state.step if self.state.step else -1
        t_start = time.time()
        while not stop and self.state.epoch < cfg.max_epochs:
            it, epoch_done = self.batches(), False
            while not stop:
                if not self.update(list(islice(it, cfg.update_freq))):
                    epoch_done = True
                    break
                if self.state.step % cfg.log_every == 0:
                    self.log_progress()
                if cfg.validate_every and self.state.step % cfg.validate_every == 0:
                    stop = self.validate_and_report(time.time() - t_start)
                    t_start, last_report = time.time(), self.state.step
                stop = stop or self.state.step >= cfg.max_steps > 0
            if epoch_done:
                if self.state.updates_in_epoch == 0:  # every pair filtered out: say so instead of "done"
                    self.dropped_last_epoch = None
                    raise ValueError(f"epoch {self.state.epoch + 1} had no training pairs; dropped: "
                                     f"{self.dropped_all_workers() or 'none (the training data is empty)'}")
                self.dropped_last_epoch, self.dropped = self.dropped, Counter()
                self.state.epoch += 1
                self.state.updates_in_epoch = 0
                if not cfg.validate_every:  # validate once per epoch
                    stop = self.validate_and_report(time.time() - t_start) or stop
                    t_start, last_report = time.time(), self.state.step
        if last_report != self.state.step:
            self.validate_and_report(time.time() - t_start)
        self.log(f"done: {self.state.step} steps, {self.state.epoch} epochs, best BLEU {self.state.best_bleu:.2f} "
                 f"at step {self.state.best_step}")


def loop_config(cfg, arch: str, model_config: dict, put) -> dict:
    """Ray Train's train_loop_config for `train_worker`, without the storage options (credentials).

    Ray Train keeps train_loop_config in its run state: the dashboard's run settings and exported state
    events, every value str()-ed (Train v2's RunSettings), so a TrainConfig there showed its storage
    options in full. They travel apart, as an object-store reference (`put`: ray.put) that the workers
    resolve: the run state shows only the reference's id.
    """
    return {"cfg": replace(cfg, storage_options={}), "arch": arch, "model_config": model_config,
            "storage_options": put(cfg.storage_options)}


def worker_cfg(config: dict, get):
    """The TrainConfig of a `loop_config`, with its storage options resolved (`get`: ray.get)."""
    return replace(config["cfg"], storage_options=get(config["storage_options"]))


def train_worker(config: dict) -> None:
    """Ray Train entry point; config: a `loop_config`."""
    import ray

    Trainer(worker_cfg(config, ray.get), config["arch"], config["model_config"]).run()
