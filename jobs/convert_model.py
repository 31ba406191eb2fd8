"""Convert models between our checkpoint format and Hugging Face directories (Marian / OPUS-MT, M2M100 / NLLB-200).

    python jobs/convert_model.py --from marian --input ./opus-mt-en-de --output s3://bucket/models/en-de
    python jobs/convert_model.py --from m2m100 --input ./nllb-200-distilled-600M --output s3://bucket/models/nllb
    python jobs/convert_model.py --to marian --input models/multi30k-en-de --output ./multi30k-en-de-hf

--from marian / m2m100 writes one of our checkpoint directories (weights as safetensors, the
tokenizer files kept as they are). The translation job also takes such a directory
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

from jobs.cli import parse_config, print_config, with_absolute_paths  # noqa: E402
from model.config_fields import arg  # noqa: E402
from model.formats import FORMAT_READERS  # noqa: E402

# --from: the external formats of the model registry (model/formats/registry.py), by name
READERS = FORMAT_READERS


@dataclass(frozen=True)
class ConvertConfig:
    """Convert a model directory between our format and Hugging Face formats."""

    input: str = arg(help="model directory at any URI")
    output: str = arg(help="directory URI to write")
    from_format: str = arg("", help="input format: marian (a Hugging Face Marian/OPUS-MT directory) or m2m100 "
                           "(M2M100 / NLLB-200)", choices=sorted(READERS), flag="--from")
    to_format: str = arg("", help="output format: marian (a Hugging Face Marian directory)", choices=["marian"],
                         flag="--to")
    max_positions: int = arg(1024, help="--to marian: positions (max_position_embeddings) of the exported model, "
                             "when ours has no limit")
    weights_dtype: str = arg("fp32", help="--from: dtype of the stored weights (fp16 halves the size; "
                             "actors compute in fp32 or bf16 either way)", choices=["fp32", "fp16"])
    storage_options: dict = arg({}, help="JSON options for fsspec (e.g. endpoint_url); never logged")

    def __post_init__(self):
        if bool(self.from_format) == bool(self.to_format):
            raise ValueError("give exactly one of --from (marian, m2m100) or --to marian")


def import_hf(cfg: ConvertConfig) -> str:
    import torch

    from model.formats import save_checkpoint

    model, tokenizer, hf, generation = READERS[cfg.from_format](cfg.input, cfg.storage_options)
    metadata = {"name": f"Converted from {cfg.input}", "converted_from": cfg.input, "hf_config": hf,
                "generation_config": generation}
    dtype = torch.float16 if cfg.weights_dtype == "fp16" else torch.float32
    save_checkpoint(cfg.output, model, tokenizer, metadata=metadata, weights_dtype=dtype,
                    storage_options=cfg.storage_options)
    params = sum(p.numel() for p in model.parameters())
    return f"wrote our checkpoint of {cfg.input} ({params:,} parameters) to {cfg.output}"


def export_marian(cfg: ConvertConfig) -> str:
    from model.decoding import DecodeConfig
    from model.formats import export_marian as export
    from model.formats import generation_defaults, load_model

    ckpt = load_model(cfg.input, storage_options=cfg.storage_options)
    config = export(ckpt.model, ckpt.tokenizer, cfg.output, max_positions=cfg.max_positions,
                    generation=generation_defaults(DecodeConfig()), storage_options=cfg.storage_options)
    vocab = "shared vocabulary" if config["share_encoder_decoder_embeddings"] else "separate vocabularies"
    return (f"wrote a Hugging Face Marian directory ({config['vocab_size']:,} ids, {vocab}) to {cfg.output}; "
            f"CTranslate2: ct2-transformers-converter --model {cfg.output} --output_dir <dir>")


def main(argv=None) -> int:
    cfg = with_absolute_paths(parse_config(ConvertConfig, argv), "input", "output")
    print_config(cfg)
    from model.errors import CheckpointError

    try:
        message = import_hf(cfg) if cfg.from_format else export_marian(cfg)
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
