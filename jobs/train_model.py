"""Train a translation model with Ray Train (DDP) on Parquet corpora streamed by Ray Data.

    python jobs/train_model.py --train s3://bucket/corpus/train --valid s3://bucket/corpus/val \\
        --tokenizer s3://bucket/tok --output s3://bucket/models/en-de --num-workers 4 --use-gpu

Writes, under --output:
    ray/<name>/   Ray Train run: checkpoints (model dirs + optimizer state) for --resume
    best/         the checkpoint with the best validation BLEU (a self-contained model dir)
    last/         the final checkpoint
    average/      the average of the last --average-last checkpoints (when asked)
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

from jobs.cli import parse_config, print_config, with_absolute_paths  # noqa: E402
from model.config_fields import arg  # noqa: E402
from model.storage import is_local, resolve  # noqa: E402
from pipeline.io import join, pyarrow_filesystem  # noqa: E402
from training.scheduled_sampling import ScheduledSampling  # noqa: E402


@dataclass(frozen=True)
class TrainConfig:
    """Train a Transformer or recurrent seq2seq model with Ray Train."""

    train: str = arg(help="training Parquet (file, directory/prefix or glob; any fsspec URI)")
    tokenizer: str = arg(help="tokenizer directory written by jobs/train_tokenizer.py")
    output: str = arg(help="output URI: Ray Train run, best/, last/, average/ model directories")
    valid: str = arg("", help="validation Parquet for loss and sacreBLEU (recommended)")
    name: str = arg("run", help="run name under <output>/ray/; the same name with --resume continues it")
    resume: bool = arg(False, help="continue the run <output>/ray/<name> from its latest checkpoint")
    init_model: str = arg("", help="start from this model directory's weights (continued training, fine-tuning, "
                          "distillation into a trained model): its architecture and dropout replace the "
                          "architecture flags, --tokenizer must be its vocabulary; the optimizer and the "
                          "learning-rate schedule start afresh (fairseq --finetune-from-model)")
    source_column: str = arg("source", help="source text column")
    target_column: str = arg("reference", help="target text column of --train")
    valid_target_column: str = arg("", help="reference column of --valid (default: --target-column); e.g. "
                                   "`reference` when training on a translation job's `translation` column")
    # architecture
    arch: str = arg("transformer", help="model family", choices=["transformer", "rnn"])
    layers: int = arg(6, help="encoder and decoder layers")
    d_model: int = arg(512, help="Transformer model dimension")
    heads: int = arg(8, help="Transformer attention heads")
    ff_dim: int = arg(2048, help="Transformer feed-forward dimension")
    attn_dropout: float = arg(0.0, help="Transformer attention dropout")
    activation_dropout: float = arg(0.0, help="Transformer dropout inside the feed-forward block")
    cell: str = arg("lstm", help="RNN cell", choices=["lstm", "gru"])
    attention: str = arg("bahdanau", help="RNN attention",
                         choices=["none", "bahdanau", "luong_dot", "luong_general"])
    emb_dim: int = arg(256, help="RNN embedding dimension")
    hidden_dim: int = arg(512, help="RNN hidden dimension")
    bidirectional: bool = arg(True, help="RNN bidirectional encoder")
    reverse_source: bool = arg(False, help="RNN: feed the source reversed (Sutskever et al. 2014)")
    input_feeding: bool = arg(False, help="RNN with Luong attention: feed each step's attentional vector into "
                              "the next step (Luong et al. 2015)")
    dropout: float = arg(0.1, help="dropout")
    share_embeddings: bool = arg(True, help="one embedding table for source and target (joint vocabulary)")
    tie_output: bool = arg(True, help="tie the output projection to the target embeddings")
    # optimization
    max_tokens: int = arg(4096, help="padded tokens per batch per worker (fairseq --max-tokens)")
    update_freq: int = arg(1, help="gradient accumulation: batches per optimizer update")
    lr: float = arg(5e-4, help="peak learning rate (Adam, inverse-square-root schedule)")
    warmup: int = arg(4000, help="linear warmup updates")
    weight_decay: float = arg(0.0, help="Adam weight decay")
    label_smoothing: float = arg(0.1, help="label smoothing")
    sampling: ScheduledSampling = arg(ScheduledSampling())
    clip_norm: float = arg(5.0, help="gradient norm clipping (5.0 as in Sutskever et al. 2014)")
    max_epochs: int = arg(50, help="stop after this many epochs")
    max_steps: int = arg(0, help="stop after this many updates (0: no limit)")
    max_len: int = arg(256, help="drop training pairs longer than this many subwords on either side (counted)")
    seed: int = arg(1, help="random seed")
    autocast: str = arg("auto", help="mixed precision: auto = bf16 on GPU, fp32 on CPU; bf16 also "
                        "helps CPUs with AVX512-BF16/AMX", choices=["auto", "bf16", "fp32"])
    # data
    read_rows: int = arg(1024, help="rows per Ray Data batch handed to the batcher")
    pool_rows: int = arg(8192, help="rows sorted together before cutting token batches (maxi-batch)")
    shuffle_rows: int = arg(20000, help="local shuffle buffer in rows (0: none)")
    # validation and checkpoints
    validate_every: int = arg(1000, help="validate and checkpoint every N updates (0: every epoch)")
    valid_beam_size: int = arg(1, help="beam size for validation BLEU (1: greedy, fastest)")
    valid_max_sentences: int = arg(0, help="validate on at most this many sentences (0: all)")
    valid_max_tokens: int = arg(8000, help="decoding token budget for validation")
    patience: int = arg(0, help="stop after N validations without a BLEU improvement (0: never)")
    keep_checkpoints: int = arg(5, help="Ray Train checkpoints kept (the latest is always kept)")
    average_last: int = arg(0, help="also write average/: the mean of the last N checkpoints (N <= keep)")
    log_every: int = arg(50, help="log progress every N updates")
    # hardware
    num_workers: int = arg(1, help="training workers (DDP ranks)")
    use_gpu: bool = arg(False, help="one GPU per worker")
    cpus_per_worker: float = arg(1.0, help="CPUs reserved per worker")
    torch_threads: int = arg(0, help="torch CPU threads per worker (0: Ray's default)")
    data_cpus: float = arg(0.5, help="CPUs for each of the read and tokenization stages")
    # A spot node taken away mid-epoch is the common failure of a nightly cluster: the worker group
    # restarts from the last checkpoint in the same job (Ray Train's FailureConfig).
    max_failures: int = arg(3, help="restart the worker group from the last checkpoint this many times after a "
                            "failure (a lost node, a killed worker) before the job fails")
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if self.average_last > self.keep_checkpoints:
            raise ValueError("--average-last cannot exceed --keep-checkpoints")
        if self.update_freq < 1 or self.max_tokens < 8:
            raise ValueError("--update-freq must be >= 1 and --max-tokens >= 8")

    def model_config(self, tokenizer) -> tuple[str, dict]:
        if self.init_model:
            return init_model_config(self.init_model, tokenizer, self.storage_options)
        common = dict(src_vocab_size=tokenizer.src_vocab_size, tgt_vocab_size=tokenizer.tgt_vocab_size,
                      dropout=self.dropout, share_embeddings=self.share_embeddings and tokenizer.joint,
                      tie_output=self.tie_output)
        if self.arch == "transformer":
            return "transformer", dict(common, d_model=self.d_model, n_heads=self.heads, enc_layers=self.layers,
                                       dec_layers=self.layers, ff_dim=self.ff_dim, attn_dropout=self.attn_dropout,
                                       activation_dropout=self.activation_dropout)
        return "rnn", dict(common, cell=self.cell, attention=self.attention, emb_dim=self.emb_dim,
                           hidden_dim=self.hidden_dim, num_layers=self.layers, bidirectional=self.bidirectional,
                           reverse_source=self.reverse_source, input_feeding=self.input_feeding)


def init_model_config(uri: str, tokenizer, storage_options: dict) -> tuple[str, dict]:
    """(arch, model config) of the --init-model directory, which must share the training vocabulary:
    a model fed ids from another vocabulary would train, but on garbage."""
    from model.formats import load_tokenizer_only, read_config

    config = read_config(uri, storage_options)
    if load_tokenizer_only(uri, storage_options).vocab_fingerprint() != tokenizer.vocab_fingerprint():
        raise ValueError(f"--init-model {uri} has another vocabulary than --tokenizer; pass the tokenizer "
                         "it was trained with")
    return config["arch"], config["model"]


def storage(cfg: TrainConfig) -> tuple[str, object | None]:
    """Ray Train storage_path (+ filesystem for remote URIs: then the path is bucket/prefix)."""
    fs, path = resolve(join(cfg.output, "ray"), cfg.storage_options)
    if is_local(fs):
        return os.path.abspath(path), None
    return path, pyarrow_filesystem(fs)


def build_train_dataset(cfg: TrainConfig):
    import ray.data

    from pipeline.io import list_parquet_files, read_parquet_files
    from training.data import TokenizePairs

    fs, files = list_parquet_files(cfg.train, cfg.storage_options)
    # Fractional CPUs: on a small machine the training workers hold most cores, and on a cluster that
    # lost a node they hold most of the survivors'; the read and tokenize stages must still get a slot
    # or the pipeline waits forever.
    ds = read_parquet_files(files, fs, cfg.read_rows, cfg.data_cpus, columns=[cfg.source_column, cfg.target_column])
    ds = ds.randomize_block_order(seed=cfg.seed)
    return ds.map_batches(
        TokenizePairs,
        fn_constructor_kwargs={"tokenizer_uri": cfg.tokenizer, "source_column": cfg.source_column,
                               "target_column": cfg.target_column, "storage_options": cfg.storage_options},
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=cfg.data_cpus,
    )


def export_models(cfg: TrainConfig, result) -> dict:
    """Copy the last checkpoint to <output>/last and average the last N into <output>/average."""
    from model.formats import load_checkpoint, save_checkpoint
    from training.average import average_checkpoints

    written = {}
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as d:
            ckpt = load_checkpoint(d)
            save_checkpoint(join(cfg.output, "last"), ckpt.model, ckpt.tokenizer, metadata=ckpt.metadata,
                            storage_options=cfg.storage_options)
            written["last"] = join(cfg.output, "last")
    if cfg.average_last > 1:
        kept = sorted(result.best_checkpoints, key=lambda cm: cm[1].get("step", 0))[-cfg.average_last:]
        ckpt = average_checkpoints([c for c, _ in kept])
        ckpt.metadata["averaged_steps"] = [m.get("step") for _, m in kept]
        save_checkpoint(join(cfg.output, "average"), ckpt.model, ckpt.tokenizer, metadata=ckpt.metadata,
                        storage_options=cfg.storage_options)
        written["average"] = join(cfg.output, "average")
    fs, best = resolve(join(cfg.output, "best"), cfg.storage_options)
    if fs.exists(f"{best}/config.json"):
        written["best"] = join(cfg.output, "best")
    return written


def main(argv=None) -> int:
    cfg = with_absolute_paths(parse_config(TrainConfig, argv), "train", "valid", "tokenizer", "output",
                             "init_model")
    print_config(cfg)
    import ray.train
    from ray.train.torch import TorchTrainer

    from model.errors import CheckpointError
    from model.tokenizers import load_tokenizer_dir
    from pipeline.cluster import init_ray
    from training.loop import loop_config, train_worker

    path, filesystem = storage(cfg)
    fs, run_dir = resolve(join(cfg.output, "ray", cfg.name), cfg.storage_options)
    if fs.exists(run_dir) and not cfg.resume:
        print(f"error: run {join(cfg.output, 'ray', cfg.name)} exists; pass --resume to continue it "
              "or choose another --name/--output", file=sys.stderr)
        return 2
    try:
        tokenizer = load_tokenizer_dir(cfg.tokenizer, cfg.storage_options)
        arch, model_config = cfg.model_config(tokenizer)
        init_ray(cfg.num_workers * cfg.cpus_per_worker + 3 * cfg.data_cpus + 1)
        train_ds = build_train_dataset(cfg)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=loop_config(cfg, arch, model_config, ray.put),  # storage options kept out of its state
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker={"CPU": cfg.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=cfg.name, storage_path=path, storage_filesystem=filesystem,
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
        ),
        datasets={"train": train_ds},
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    written = export_models(cfg, result)
    print(f"[train] finished in {time.time() - t0:.0f} s; metrics {result.metrics}")
    for kind, uri in written.items():
        print(f"[train] {kind}: {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
