"""Every model format the pipeline runs, in one table, chosen by what the directory's config.json says.

    native   our own checkpoints (formats/native.py): config.json has "format": "nmt-batch-checkpoint"
    marian   Hugging Face Marian / OPUS-MT directories (formats/hf/marian.py): config.json has "model_type": "marian"
    m2m100   Hugging Face M2M100 and NLLB-200 directories (formats/hf/m2m100.py): "model_type": "m2m_100"

Everything after loading (search, pipeline, reports) sees one model interface and one tokenizer
interface. A new family is one more row here and one module holding its quirks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from model.errors import CheckpointError
from model.formats.native_files import CARD, CONFIG, FORMAT, load_tokenizer_only
from model.formats.native_files import read_config as read_native_config
from model.storage import read_json, resolve

# model.formats.native and model.formats.hf.marian (torch) are imported where models are loaded: the CPU stages
# only read tokenizers, and never pay for torch.


@dataclass(frozen=True)
class ModelInfo:
    """What the driver needs to know of a model before any actor loads it."""

    format: str
    arch: str
    config: dict  # the architecture's config (our TransformerConfig / RNNConfig fields)
    weights_sha256: str  # identifies the weights: a resumed output must be made by the same ones
    metadata: dict = field(default_factory=dict)
    # sha256 of every file that decides a translation (weights, every weight shard, configs, vocabularies,
    # SentencePiece models): the resume fingerprint
    files_sha256: dict = field(default_factory=dict)
    # The one language pair a bilingual model declares in its files ({"source": "en", "target": "de"}; {} none):
    # our checkpoints' config.json metadata.languages, Marian's tokenizer_config.json source_lang/target_lang
    languages: dict = field(default_factory=dict)


def _read_json_config(uri: str, storage_options: dict | None) -> dict:
    fs, root = resolve(uri, storage_options)
    config = read_json(fs, root, CONFIG, f"model {uri}")
    if not isinstance(config, dict):
        raise CheckpointError(f"model {uri}: {CONFIG} is not a JSON object")
    return config


# --- native ---------------------------------------------------------------------------------------
def _native_info(uri, storage_options) -> ModelInfo:
    config = read_native_config(uri, storage_options)
    metadata = config.get("metadata", {})
    return ModelInfo("native", config["arch"], config["model"], config["files"]["model.safetensors"],
                     metadata, _native_files(config), dict(metadata.get("languages") or {}))


def _native_files(config: dict) -> dict[str, str]:
    """config.json records the sha256 of every file, and loading checks each file against it, so the recorded
    hashes stand for the files (nothing is read again). config.json itself counts by what decides a
    translation (architecture, model and tokenizer settings), not by its metadata; the card is left out."""
    decisive = {k: config[k] for k in ("format", "version", "arch", "model", "tokenizer") if k in config}
    own = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()
    return {CONFIG: own, **{name: digest for name, digest in sorted(config["files"].items()) if name != CARD}}


def _native_load(uri, device, dtype, storage_options):
    from model.formats.native import load_checkpoint

    return load_checkpoint(uri, device=device, dtype=dtype, storage_options=storage_options)


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")  # read_hf_weights' order
# Hugging Face files that decide a translation, beside the weights (those present are hashed): the configs
# (generation_config.json is not read for decoding today; hashed so that a later use cannot resume silently
# across its change), the vocabularies and SentencePiece models, the tokenizer configs that map them.
MARIAN_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "source.spm", "target.spm",
                "vocab.json", "target_vocab.json")
M2M100_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
                "tokenizer.json", "sentencepiece.bpe.model", "vocab.json")


def _hf_files_digest(uri, storage_options, names: tuple[str, ...]) -> tuple[dict[str, str], bytes, str]:
    """(sha256 of each file, first bytes of the weights, the weights' file name) of a Hugging Face directory.

    The weights are the file read_hf_weights loads, and with sharded safetensors every shard its index
    names: the index alone would let two directories with other shard bytes look alike. Each file is read
    once, in 16 MB chunks (the actors read the weights whole anyway)."""
    fs, root = resolve(uri, storage_options)
    weights = next((name for name in WEIGHT_FILES if fs.exists(f"{root}/{name}")), None)
    if weights is None:
        raise CheckpointError(f"model {uri}: no model.safetensors or pytorch_model.bin")
    digests = {name: _sha256_of(fs, f"{root}/{name}")[0] for name in names
               if name != weights and fs.exists(f"{root}/{name}")}
    digests[weights], head = _sha256_of(fs, f"{root}/{weights}")
    if weights == "model.safetensors.index.json":
        try:
            shards = sorted(set(json.loads(fs.cat_file(f"{root}/{weights}"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"model {uri}: {weights} is not a safetensors index ({e})") from None
        for name in shards:
            if not fs.exists(f"{root}/{name}"):
                raise CheckpointError(f"model {uri}: missing weight shard {name} (named by {weights})")
            digests[name] = _sha256_of(fs, f"{root}/{name}")[0]
    return digests, head, weights


def _sha256_of(fs, path: str) -> tuple[str, bytes]:
    """A file's sha256, read in 16 MB chunks, and its first chunk."""
    digest, head = hashlib.sha256(), b""
    with fs.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            head = head or chunk
            digest.update(chunk)
    return digest.hexdigest(), head


# --- marian ---------------------------------------------------------------------------------------
def _marian_info(uri, storage_options) -> ModelInfo:
    from model.formats.hf.marian import transformer_config  # the driver: it loads torch for the actors' sake anyway

    hf = _read_json_config(uri, storage_options)
    digests, head, name = _hf_files_digest(uri, storage_options, MARIAN_FILES)
    cfg = transformer_config(hf, has_stored_positions=_stores_positions(head, name), where=f"model {uri}")
    return ModelInfo("marian", "transformer", asdict(cfg), digests[name],
                     {"hf_config": {k: hf[k] for k in sorted(hf) if not isinstance(hf[k], (dict, list))}}, digests,
                     _marian_languages(uri, storage_options))


def _marian_languages(uri, storage_options) -> dict:
    """OPUS-MT's tokenizer_config.json names its pair (source_lang, target_lang); {} when it does not."""
    fs, root = resolve(uri, storage_options)
    path = f"{root}/tokenizer_config.json"
    if not fs.exists(path):
        return {}
    try:
        conf = json.loads(fs.cat_file(path))
    except ValueError:
        return {}
    pair = {"source": conf.get("source_lang"), "target": conf.get("target_lang")}
    return {k: v for k, v in pair.items() if isinstance(v, str) and v}


def _stores_positions(head: bytes, name: str) -> bool:
    """Whether a safetensors file holds position tables, from its JSON header (the first bytes)."""
    if name != "model.safetensors" or len(head) < 8:
        return False
    size = int.from_bytes(head[:8], "little")
    try:
        keys = json.loads(head[8:8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return "model.decoder.embed_positions.weight" in keys


def _marian_load(uri, device, dtype, storage_options):
    from model.formats.hf.marian import load_marian
    from model.formats.native import Checkpoint

    model, tokenizer, hf, generation = load_marian(uri, device, dtype, storage_options)
    return Checkpoint(model=model, tokenizer=tokenizer, config={"format": "marian", "hf_config": hf},
                      metadata={"generation_config": generation})


def _marian_read(uri, storage_options):
    from model.formats.hf.marian import load_marian

    return load_marian(uri, storage_options=storage_options)


def _marian_tokenizer(uri, storage_options):
    from model.tokenizers import load_marian_tokenizer

    fs, root = resolve(uri, storage_options)
    return load_marian_tokenizer(fs, root, uri, _read_json_config(uri, storage_options))


# --- m2m100 (M2M100 and NLLB-200) ------------------------------------------------------------------
def _m2m100_info(uri, storage_options) -> ModelInfo:
    from model.formats.hf.m2m100 import transformer_config

    hf = _read_json_config(uri, storage_options)
    cfg = transformer_config(hf, where=f"model {uri}")
    digests, _, name = _hf_files_digest(uri, storage_options, M2M100_FILES)
    return ModelInfo("m2m100", "transformer", asdict(cfg), digests[name],
                     {"hf_config": {k: hf[k] for k in sorted(hf) if not isinstance(hf[k], (dict, list))}}, digests)


def _m2m100_load(uri, device, dtype, storage_options):
    from model.formats.hf.m2m100 import load_m2m100
    from model.formats.native import Checkpoint

    model, tokenizer, hf, generation = load_m2m100(uri, device, dtype, storage_options)
    return Checkpoint(model=model, tokenizer=tokenizer, config={"format": "m2m100", "hf_config": hf},
                      metadata={"generation_config": generation})


def _m2m100_read(uri, storage_options):
    from model.formats.hf.m2m100 import load_m2m100

    return load_m2m100(uri, storage_options=storage_options)


def _m2m100_tokenizer(uri, storage_options):
    from model.tokenizers import load_m2m100_tokenizer

    fs, root = resolve(uri, storage_options)
    return load_m2m100_tokenizer(fs, root, uri, _read_json_config(uri, storage_options))


@dataclass(frozen=True)
class Loader:
    name: str
    detect: object  # config.json dict -> bool
    info: object  # (uri, storage_options) -> ModelInfo
    load: object  # (uri, device, dtype, storage_options) -> Checkpoint
    tokenizer: object  # (uri, storage_options) -> tokenizer
    # (uri, storage_options) -> (model, tokenizer, config.json, generation_config.json) as stored, for
    # convert_model --from; None for our own format
    read: object = None


LOADERS = (
    Loader("native", lambda c: c.get("format") == FORMAT, _native_info, _native_load,
           lambda uri, so: load_tokenizer_only(uri, so)),
    Loader("marian", lambda c: c.get("model_type") == "marian", _marian_info, _marian_load, _marian_tokenizer,
           _marian_read),
    Loader("m2m100", lambda c: c.get("model_type") == "m2m_100", _m2m100_info, _m2m100_load, _m2m100_tokenizer,
           _m2m100_read),
)
# The external formats convert_model reads (--from), by name.
FORMAT_READERS = {loader.name: loader.read for loader in LOADERS if loader.read is not None}


def loader_for(uri: str, storage_options: dict | None = None) -> Loader:
    config = _read_json_config(uri, storage_options)
    for loader in LOADERS:
        if loader.detect(config):
            return loader
    kind = config.get("model_type") or config.get("format") or "unknown"
    raise CheckpointError(f"model {uri}: {CONFIG} describes a {kind!r} model; supported: our checkpoints "
                          f"(format {FORMAT!r}), Hugging Face Marian (model_type 'marian') and M2M100/NLLB ('m2m_100') "
                          "directories")


def model_info(uri: str, storage_options: dict | None = None) -> ModelInfo:
    return loader_for(uri, storage_options).info(uri, storage_options)


def load_model(uri: str, device="cpu", dtype=None, storage_options: dict | None = None):
    """Model (eval mode) and tokenizer of any supported directory at any URI."""
    return loader_for(uri, storage_options).load(uri, device, dtype, storage_options)


def load_tokenizer(uri: str, storage_options: dict | None = None):
    """The tokenizer alone (for the CPU tokenize/detokenize stages)."""
    return loader_for(uri, storage_options).tokenizer(uri, storage_options)
