"""An M2M100 directory through the translation job on a local Ray."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.m2m100_helpers import build_m2m100_dir, hf_model
from tests.unit.test_m2m100 import DE, SOURCES, generated, row_languages, their_inputs


def test_the_job_takes_languages_per_row_and_reports_unknown_ones(local_ray, tmp_path):
    """Through Ray: target languages mixed within batches, an unknown code gets its own status, the rest of its
    batch is unaffected, scores per language pair, and a resume redoes only what is missing."""
    from jobs.translate_corpus import main as translate
    from pipeline.io import read_table

    kind = "m2m100"
    path, tok = build_m2m100_dir(str(tmp_path / "hf"))
    hf = hf_model(path)
    src_langs, tgt_langs = row_languages(kind)
    tgt_langs = list(tgt_langs)
    tgt_langs[5] = "xx"  # a code the model does not know
    n = len(SOURCES)
    refs = [DE[i] if t != "xx" else "x" for i, t in enumerate(tgt_langs)]
    (tmp_path / "in").mkdir()
    table = pa.table({"id": list(range(n)), "source": SOURCES, "src_lang": src_langs, "tgt_lang": tgt_langs,
                      "reference": refs})
    pq.write_table(table.slice(0, 20), tmp_path / "in" / "a.parquet")
    pq.write_table(table.slice(20), tmp_path / "in" / "b.parquet")
    out = tmp_path / "out"
    flags = ["--input", str(tmp_path / "in"), "--output", str(out), "--model", path, "--source-lang-column",
             "src_lang", "--target-lang-column", "tgt_lang", "--max-len-a", "0", "--max-len-b", "20",
             "--beam-size", "1", "--batch-rows", "16", "--cpus-per-actor", "1", "--actors", "1"]
    assert translate(flags) == 0
    rows = read_table(str(out / "translations")).to_pylist()
    assert [r["id"] for r in rows] == list(range(n))
    assert rows[5]["status"] == "unsupported_language" and rows[5]["translation"] == ""
    enc, starts = their_inputs(tok, src_langs, row_languages(kind)[1])
    with torch.no_grad():
        theirs = hf.generate(**enc, num_beams=1, max_new_tokens=21, min_new_tokens=1, decoder_input_ids=starts,
                             forced_eos_token_id=2)
    expected = tok.batch_decode(theirs, skip_special_tokens=True)
    # Rows whose translation ran to the 20-token limit are length_limit (issue 31), the others ok.
    assert [r["status"] for i, r in enumerate(rows) if i != 5] == [
        "length_limit" if len(ids) == 20 else "ok" for i, ids in enumerate(generated(theirs)) if i != 5]
    assert [r["translation"] for i, r in enumerate(rows) if i != 5] == [e for i, e in enumerate(expected) if i != 5]

    report = json.load(open(out / "report.json"))
    assert report["overall"]["status"]["unsupported_language"] == 1
    pairs = report["language_pairs"]
    assert set(pairs) == {f"{s}-{t}" for s, t in zip(src_langs, tgt_langs, strict=True)}
    import sacrebleu

    for pair, entry in pairs.items():
        idx = [i for i in range(n) if f"{src_langs[i]}-{tgt_langs[i]}" == pair]
        assert entry["sentences"] == len(idx)
        bleu = sacrebleu.corpus_bleu([rows[i]["translation"] for i in idx], [[refs[i] for i in idx]])
        assert entry["scores"]["bleu"]["score"] == pytest.approx(bleu.score, abs=1e-9)

    # Resume: drop one shard's output and its stats; only that shard is translated again.
    os.remove(out / "translations" / "b.parquet")
    os.remove(out / "_stats" / "b.parquet.json")
    assert translate(flags) == 0
    report = json.load(open(out / "report.json"))
    assert report["run"]["sentences"] == n - 20
    assert read_table(str(out / "translations")).to_pylist() == rows
