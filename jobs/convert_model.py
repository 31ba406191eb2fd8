"""Convert models between our checkpoint format and Hugging Face Marian / OPUS-MT directories.

    python jobs/convert_model.py --from marian --input ./opus-mt-en-de --output s3://bucket/models/en-de
    python jobs/convert_model.py --to marian --input models/multi30k-en-de --output ./multi30k-en-de-hf

--from marian writes one of our checkpoint directories (weights as safetensors, the Marian
tokenizer files kept as they are). The translation job also takes a Marian directory
directly as --model; converting once saves re-reading `pytorch_model.bin` on every actor and
records the weights' hash in the checkpoint.

--to marian writes a directory that stock transformers (`MarianMTModel.from_pretrained`,
`MarianTokenizer.from_pretrained`) and stock `ct2-transformers-converter --model DIR` load, with a
generation_config.json holding our decoding defaults. Only Transformer models can be exported.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

from jobs.cli import arg, parse_config, print_config, with_absolute_paths  # noqa: E402

FORMATS = ("marian",)


@dataclass(frozen=True)
class ConvertConfig:
    """Convert a model directory between our format and the Hugging Face Marian format."""

    input: str = arg(help="model directory at any URI")
    output: str = arg(help="directory URI to write")
    from_format: str = arg("", help="input format: marian (a Hugging Face Marian/OPUS-MT directory)",
                           choices=FORMATS, flag="--from")
    to_format: str = arg("", help="output format: marian (a Hugging Face Marian directory)", choices=FORMATS,
                         flag="--to")
    max_positions: int = arg(1024, help="--to marian: positions (max_position_embeddings) of the exported model, "
                             "when ours has no limit")
    weights_dtype: str = arg("fp32", help="--from marian: dtype of the stored weights (fp16 halves the size; "
                             "actors compute in fp32 or bf16 either way)", choices=["fp32", "fp16"])
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if bool(self.from_format) == bool(self.to_format):
            raise ValueError("give exactly one of --from marian or --to marian")


def import_marian(cfg: ConvertConfig) -> str:
    import torch

    from model.checkpoint import save_checkpoint
    from model.marian import load_marian

    model, tokenizer, hf, generation = load_marian(cfg.input, storage_options=cfg.storage_options)
    metadata = {"name": f"Converted from {cfg.input}", "converted_from": cfg.input, "hf_config": hf,
                "generation_config": generation}
    dtype = torch.float16 if cfg.weights_dtype == "fp16" else torch.float32
    save_checkpoint(cfg.output, model, tokenizer, metadata=metadata, weights_dtype=dtype,
                    storage_options=cfg.storage_options)
    params = sum(p.numel() for p in model.parameters())
    return f"wrote our checkpoint of {cfg.input} ({params:,} parameters) to {cfg.output}"


def export_marian(cfg: ConvertConfig) -> str:
    from model.loaders import load_model
    from model.marian import export_marian as export
    from model.marian import generation_defaults
    from model.search import DecodeConfig

    ckpt = load_model(cfg.input, storage_options=cfg.storage_options)
    config = export(ckpt.model, ckpt.tokenizer, cfg.output, max_positions=cfg.max_positions,
                    generation=generation_defaults(DecodeConfig()), storage_options=cfg.storage_options)
    vocab = "shared vocabulary" if config["share_encoder_decoder_embeddings"] else "separate vocabularies"
    return (f"wrote a Hugging Face Marian directory ({config['vocab_size']:,} ids, {vocab}) to {cfg.output}; "
            f"CTranslate2: ct2-transformers-converter --model {cfg.output} --output_dir <dir>")


def main(argv=None) -> int:
    cfg = with_absolute_paths(parse_config(ConvertConfig, argv), "input", "output")
    print_config(cfg)
    from model.checkpoint import CheckpointError

    try:
        message = import_marian(cfg) if cfg.from_format else export_marian(cfg)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
