"""A Marian directory through the translation job on a local Ray."""

import json

import pyarrow as pa
import torch

from tests.marian_helpers import build_marian_dir, hf_model_and_tokenizer
from tests.unit.test_marian import SHAPES, SOURCES


def test_the_translation_job_runs_a_marian_directory(local_ray, tmp_path):
    """--model DIR with a Hugging Face directory, through Ray: the translations are transformers' own."""
    import pyarrow.parquet as pq

    from jobs.translate_corpus import main as translate
    from pipeline.io import read_table

    path = build_marian_dir(str(tmp_path / "hf"), **SHAPES["shared-swish"])
    hf, tok = hf_model_and_tokenizer(path)
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": list(range(40)), "source": SOURCES[:40]}), tmp_path / "in" / "a.parquet")
    flags = ["--input", str(tmp_path / "in"), "--model", path, "--max-len-a", "0", "--max-len-b", "30",
             "--batch-rows", "16", "--cpus-per-actor", "1", "--actors", "1"]
    assert translate([*flags, "--output", str(tmp_path / "greedy"), "--beam-size", "1"]) == 0
    with torch.no_grad():
        out = hf.generate(**tok(SOURCES[:40], return_tensors="pt", padding=True), num_beams=1, max_new_tokens=31,
                          min_new_tokens=1)
    got = read_table(str(tmp_path / "greedy" / "translations")).column("translation").to_pylist()
    assert got == tok.batch_decode(out, skip_special_tokens=True)

    report = json.load(open(tmp_path / "greedy" / "report.json"))
    assert report["model"]["format"] == "marian" and report["model"]["config"]["positions"] == "marian"
