"""bench/engines.py end to end on a few sentences: the shipped model exported, converted by the stock
CTranslate2 converter, decoded by ours and by CTranslate2 in their own processes, and the figures written.
On CPU here; the same run on a GPU (--device cuda, half precisions) where one is present."""

import gzip
import json
import subprocess
import sys

import pytest

from pipeline.io import read_table
from tests.conftest import ROOT

PRECISIONS = {"cpu": "fp32", "cuda": "fp16,int8_fp16"}


def has_ctranslate2() -> bool:
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


def write_data(folder, sample_corpus, n=24):
    table = read_table(sample_corpus)
    for column, lang in (("source", "en"), ("reference", "de")):
        with gzip.open(folder / f"test_2016_flickr.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(table.column(column).to_pylist()[:n]) + "\n")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_engines_benchmark_writes_every_figure_and_ratio(device, sample_corpus, tmp_path):
    write_data(tmp_path, sample_corpus)
    out = tmp_path / "engines.json"
    # On a GPU machine without CTranslate2 (its wheels need CUDA 12's cuBLAS) transformers stands in.
    other = "ctranslate2" if device == "cpu" or has_ctranslate2() else "transformers"
    cmd = [sys.executable, "bench/engines.py", "--device", device, "--data", str(tmp_path), "--sizes", "shipped",
           "--precisions", PRECISIONS[device], "--engines", f"ours,{other}", "--sentences", "24", "--long", "0",
           "--threads", "1", "--rounds", "1", "--job-sentences", "0", "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = {(r["set"], r["precision"], r["engine"]): r for r in result["runs"]}
    first = PRECISIONS[device].split(",")[0]
    ours, them = runs[("test_2016_flickr", first, "ours")], runs[("test_2016_flickr", first, other)]
    assert ours["sentences"] == them["sentences"] == 24
    assert ours["target_tokens_per_second"] > 0 and ours["bleu"] is not None
    assert not result.get("failed"), result.get("failed")
    label = "ctranslate2" if other == "ctranslate2" else f"transformers {first}"
    assert f"shipped/test_2016_flickr/{first}: ours / {label}" in result["ratios"]
    if device == "cpu":  # the same weights, the same search: the same translations at fp32
        assert runs[("test_2016_flickr", "fp32", "ours")]["bleu"] == runs[("test_2016_flickr", "fp32", "ctranslate2")][
            "bleu"]
    else:
        assert result["machine"]["gpu"] and "peak_gpu_mb" in runs[("test_2016_flickr", "fp16", "ours")]
        assert ("test_2016_flickr", "int8_fp16", "ours") not in runs  # CTranslate2's own mode
        if other == "ctranslate2":
            assert "shipped/test_2016_flickr: ours fp16 / ctranslate2 int8_fp16" in result["ratios"]
