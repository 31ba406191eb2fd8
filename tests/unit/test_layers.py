"""The layering written in pyproject.toml ([tool.importlinter]) holds, and each sub-package's public names
have one import path: the package's own `__all__`."""

from __future__ import annotations

import ast
import importlib
import os
import pathlib
import subprocess
import sys
import types

import pytest

from tests.conftest import ROOT

SUB_PACKAGES = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for top in ("model", "pipeline") for init in pathlib.Path(ROOT, top).glob("*/__init__.py")
)


def test_the_import_contracts_are_kept():
    """lint-imports: layers point one way (no circles), independent packages stay so, no torch in CPU stages."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("package", SUB_PACKAGES)
def test_every_public_name_of_a_sub_package_is_what_its_home_module_defines(package):
    """`from package import name` gives the object itself (never a submodule that shadows a lazy name)."""
    module = importlib.import_module(package)
    assert module.__all__, f"{package} declares no public names"
    for name in module.__all__:
        value = getattr(module, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"


def test_no_module_re_exports_a_name_it_imports():
    """A name is imported from its home; `# noqa: F401` on an import (a re-export) would give it a second path.
    Package __init__ files are the exception: they are the public path."""
    offenders = []
    for top in ("model", "pipeline", "training", "jobs"):
        for path in pathlib.Path(ROOT, top).rglob("*.py"):
            if path.name == "__init__.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    line = path.read_text().splitlines()[node.end_lineno - 1]
                    if "F401" in line:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_every_architecture_and_tokenizer_provides_its_written_contract():
    """The Protocols in model/architectures/contract.py and model/tokenizers/base.py are what the
    implementations offer (methods and properties, checked on the classes)."""
    from model.architectures import DecodingModel, RNNSeq2Seq, Transformer
    from model.tokenizers import FairseqMultilingualTokenizer, MarianTokenizer, Tokenizer, TokenizerContract

    for protocol, classes in ((DecodingModel, (Transformer, RNNSeq2Seq)),
                              (TokenizerContract, (Tokenizer, MarianTokenizer, FairseqMultilingualTokenizer))):
        members = [n for n, v in vars(protocol).items() if callable(v) or isinstance(v, property)]
        members = [n for n in members if not n.startswith("_")]
        assert members
        for cls in classes:
            missing = [n for n in members if not hasattr(cls, n)]
            assert not missing, f"{cls.__name__} lacks {missing} of {protocol.__name__}"


def test_every_model_states_its_capabilities_so_nothing_probes_for_them():
    """The search, the ensemble, the BLAS choice and the fusing read the contract's data members directly
    (no getattr with a default): every architecture and the ensemble carry them, and their configs carry
    the fields the search reads."""
    from model.architectures import DecodingModel
    from model.decoding import Ensemble
    from tests.helpers import tiny_rnn, tiny_transformer

    transformer, rnn = tiny_transformer(), tiny_rnn()
    for model in (transformer, rnn, Ensemble([transformer, rnn])):
        missing = [n for n in DecodingModel.__annotations__ if not hasattr(model, n)]
        assert not missing, f"{type(model).__name__} lacks {missing}"
        for field in ("pad_id", "bos_id", "eos_id", "source_pad_id", "max_positions", "tgt_vocab_size"):
            assert isinstance(getattr(model.cfg, field), int), (type(model).__name__, field)
    assert transformer.shares_memory_across_beams and not rnn.shares_memory_across_beams
    assert not Ensemble([transformer, rnn]).shares_memory_across_beams
    assert rnn.encoding_products() == [] and len(transformer.encoding_products()) > 0
