"""Job flags come from the config dataclasses; the generated reference stays in step with them."""

import os
import sys

import pytest

from jobs.cli import parse_config
from jobs.translate_corpus import TranslateConfig
from model.config_fields import redacted
from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_cli_docs import render  # noqa: E402


def test_docs_cli_md_is_up_to_date():
    with open(os.path.join(ROOT, "docs", "cli.md")) as f:
        assert f.read() == render(), "run: python scripts/make_cli_docs.py"


def test_flags_types_lists_and_booleans():
    cfg = parse_config(TranslateConfig, ["--beam-size", "3", "--write-scores", "--ensemble", "a", "--ensemble", "b",
                                         "--storage-options", '{"key": "AKIA", "secret": "s3cr3t"}'])
    assert cfg.translation.decode.beam_size == 3 and cfg.translation.write_scores is True
    assert cfg.ensemble == ["a", "b"]
    assert parse_config(TranslateConfig, ["--write-scores=false"]).translation.write_scores is False
    assert redacted(cfg)["storage_options"] == {"key": "***", "secret": "***"}


def test_invalid_values_exit_with_a_message():
    with pytest.raises(SystemExit, match="nbest must be in 1..beam_size"):
        parse_config(TranslateConfig, ["--nbest", "9", "--beam-size", "2"])


def test_decoding_settings_have_one_home():
    """Every DecodeConfig field is a flag of the translation job, part of the resume fingerprint and of the
    report, with the library's default: adding a decoding option is one edit."""
    import dataclasses

    from jobs.cli import build_parser
    from jobs.translate_corpus import hardware_for
    from model.decoding import DecodeConfig

    parser = build_parser(TranslateConfig)
    defaults = DecodeConfig()
    resolved = hardware_for(parse_config(TranslateConfig, []), gpus=0)
    fingerprint = resolved.translation.fingerprint()
    for f in dataclasses.fields(DecodeConfig):
        assert parser.get_default(f.name) == getattr(defaults, f.name)
        assert fingerprint[f.name] == getattr(defaults, f.name)
    assert fingerprint["precision"] == "fp32"  # resolved on the CPU (the fingerprint itself keeps "auto")


@pytest.mark.parametrize("value", ['{"key": "AKIAEXAMPLE", "secret": "s3cr3t-value",}',
                                   '["AKIAEXAMPLE", "s3cr3t-value"]'])
def test_a_malformed_storage_options_value_is_reported_without_its_content(capsys, value):
    with pytest.raises(SystemExit) as e:
        parse_config(TranslateConfig, ["--storage-options", value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--storage-options" in err
    assert "AKIAEXAMPLE" not in err and "s3cr3t" not in err


def test_one_walk_over_nested_configs_turns_settings_into_flags_and_back():
    """leaf_fields is the one walk: the flags, the parsed config and the fingerprint's flat settings agree,
    and a setting declared twice across the nesting is refused."""
    import dataclasses

    from jobs.train_model import TrainConfig
    from model.config_fields import arg, from_leaf_values, leaf_fields, leaf_values

    cfg = parse_config(TranslateConfig, ["--beam-size", "3", "--max-tokens", "1234", "--unit", "document"])
    flat = leaf_values(cfg)
    assert flat["beam_size"] == 3 and flat["max_tokens"] == 1234 and flat["unit"] == "document"
    assert from_leaf_values(TranslateConfig, flat) == cfg
    train = parse_config(TrainConfig, ["--train", "x", "--tokenizer", "t", "--output", "o", "--layers", "2"])
    assert from_leaf_values(TrainConfig, leaf_values(train)) == train
    assert [f.name for _, f, _ in leaf_fields(TranslateConfig)] == list(flat)

    @dataclasses.dataclass(frozen=True)
    class Inner:
        beam_size: int = arg(2, help="x")

    @dataclasses.dataclass(frozen=True)
    class Outer:
        inner: Inner = arg(Inner(), help="nested")
        beam_size: int = arg(4, help="again")

    with pytest.raises(ValueError, match="'beam_size' is declared twice"):
        leaf_fields(Outer)
