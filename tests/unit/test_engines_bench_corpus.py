"""bench/engines.py's whole-job corpus and its --reuse-runs check (the engines themselves:
tests/integration/test_engines_bench.py)."""

import gzip
import json

import pytest

from bench.engines import job_sentences, reused_runs


def write_lines(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(f"{line}\n" for line in lines))


def test_the_job_corpus_holds_distinct_sentences(tmp_path):
    """The job decodes identical segments once: a corpus of repeated sentences timed one decode of each and
    copies (the whole job came out at a third of the bare decoder's rate). Train, then val, duplicates out."""
    write_lines(tmp_path / "train.en.gz", ["A dog runs.", "A cat sits.", "A dog runs.", "Two men walk."])
    write_lines(tmp_path / "val.en.gz", ["A cat sits.", "A girl sings."])
    assert job_sentences(str(tmp_path), 4) == ["A dog runs.", "A cat sits.", "Two men walk.", "A girl sings."]
    with pytest.raises(SystemExit, match="holds 4 distinct sentences"):
        job_sentences(str(tmp_path), 5)


def test_reused_runs_must_have_had_the_same_settings(tmp_path):
    config = {"sizes": "shipped", "threads": 2, "job_sentences": 30000, "job_engines": "ours"}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"config": config, "runs": [{"engine": "ours"}]}))
    assert reused_runs(str(path), {**config, "job_sentences": 12000})["runs"] == [{"engine": "ours"}]
    with pytest.raises(SystemExit, match="other settings \\(threads\\)"):
        reused_runs(str(path), {**config, "threads": 1})
