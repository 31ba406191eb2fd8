"""The figures in README.md and docs/ are the ones bench/make_docs.py generates from bench/results/*.json."""

import os
import re

from tests.conftest import ROOT

GENERATED_BLOCK = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)


def test_the_docs_are_what_make_docs_generates_from_the_results():
    """`python bench/make_docs.py --check`: a figure edited by hand in a generated file or block, or a result
    added without regenerating, fails here."""
    from bench import make_docs

    stale = [path for path, text in make_docs.render().items() if open(os.path.join(ROOT, path)).read() != text]
    assert not stale, f"run python bench/make_docs.py: {stale} differ from what it generates"


def hand_typed(path: str) -> str:
    """The text of a doc outside its generated blocks."""
    return GENERATED_BLOCK.sub("", open(os.path.join(ROOT, path)).read())


def test_measured_speed_ups_and_costs_are_not_typed_by_hand():
    """Issue 37: int8's speed-up had four values, costs were rounded to contradict each other, CTranslate2
    was said to be ahead where the table showed otherwise. Those figures live in generated blocks only."""
    from jobs.cli import build_parser
    from jobs.translate_corpus import TranslateConfig

    texts = {p: hand_typed(p) for p in ("README.md", "docs/operations.md")}
    texts["--help"] = build_parser(TranslateConfig).format_help()
    for name, text in texts.items():
        flat = " ".join(text.split())
        assert not re.search(r"int8[^.|]{0,120}?\b\d+(\.\d+)?(-\d+(\.\d+)?)?x (faster|fp32|the)", flat), name
        assert not re.search(r"\$\d", flat), name  # prices and costs: docs/operations.md's sizing block
        assert "few percent ahead" not in flat, name


def test_the_results_page_names_the_checkpoint_the_card_names():
    import json

    meta = json.load(open(os.path.join(ROOT, "models", "multi30k-en-de", "config.json")))["metadata"]
    results = open(os.path.join(ROOT, "docs", "results.md")).read()
    assert meta["chosen"] == "best" and "its best/ checkpoint" in results and "average of its last 5" not in results
