"""The scoring job end to end on a local Ray."""

import json

import pyarrow.parquet as pq
from sacrebleu.metrics import BLEU, CHRF

from jobs.score_corpus import main as score_main
from tests.unit.test_scoring import TABLE, clean


def test_score_job_end_to_end_local(local_ray, tmp_path, capsys):
    pq.write_table(TABLE.slice(0, 4), tmp_path / "a.parquet")
    pq.write_table(TABLE.slice(4), tmp_path / "b.parquet")
    out = tmp_path / "scores"
    code = score_main(["--input", str(tmp_path / "*.parquet"), "--output", str(out), "--hypothesis-column", "hyp",
                       "--reference-column", "ref", "--reference-column", "ref2", "--group-by", "g",
                       "--source-column", "src", "--confidence", "--bootstrap-samples", "200", "--sentence-scores",
                       "--chrf-plus", "--batch-rows", "2", "--actors", "2"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    # the 6 rows arrive as blocks of --batch-rows, one actor call each, whichever actor takes them
    assert sum(report["run"]["actor_calls"]) == 3 and len(report["run"]["actor_calls"]) <= 2
    assert 0 < report["run"]["actor_private_mb_first_call"] <= report["run"]["actor_peak_private_mb"]
    expected = BLEU().corpus_score(clean("hyp"), [clean("ref"), clean("ref2")])
    assert report["overall"]["scores"]["bleu"]["score"] == expected.score
    chrf_pp = CHRF(word_order=2)
    chrf_pp.corpus_score(clean("hyp"), [clean("ref"), clean("ref2")])
    assert report["overall"]["scores"]["chrf"]["signature"] == str(chrf_pp.get_signature())
    assert "nw:2" in report["overall"]["scores"]["chrf"]["signature"]
    assert set(report["groups"]) == {"a", "b", "c"} and "ci95" in report["groups"]["b"]["scores"]["bleu"]["bootstrap"]
    for png in ("scores_by_group.png", "scores_by_length.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sentences = pq.read_table(out / "sentence_scores")
    assert sentences.num_rows == 6 and "sentence_bleu" in sentences.column_names
    assert "±" in (out / "report.md").read_text()
