"""Scoring: per-group sums equal sacreBLEU, bootstrap intervals and paired tests agree with sacreBLEU's."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from jobs.score_corpus import main as score_main
from pipeline.scoring import MetricOptions, SentenceScores
from pipeline.scoring.corpus import Accumulator, ScoreBatch, ScoreSpec, bucket_name, finalize

HYP = ["Ein Mann fährt Fahrrad.", None, "Zwei Hunde spielen im Schnee!", "Ünïcödé — ça marche?", "ok", "Ja."]
REF = ["Ein Mann fährt ein Fahrrad.", "Eine Frau.", None, "Unicode, ça marche ?", "okay", "Ja."]
REF2 = ["Ein Radfahrer.", "Frau", "Hunde im Schnee.", "ça marche", "", "Ja!"]
TABLE = pa.table({"hyp": HYP, "ref": REF, "ref2": REF2, "g": ["a", "a", "b", "b", "b", "c"],
                  "src": ["one two", "three", "x " * 15, "y " * 45, "z", "w"]})


def spec(**kw):
    base = dict(hypothesis="hyp", references=("ref",), group_by=("g",), compare=None, length_column="src",
                metrics=("bleu", "chrf", "ter"), options=MetricOptions(), bootstrap=0, seed=1)
    base.update(kw)
    return ScoreSpec(**base)


def run(s, table=TABLE, cut=3):
    acc = Accumulator()
    udf = ScoreBatch(s)
    for part in (table.slice(0, cut), table.slice(cut)):  # two batches, as Ray would split them
        acc.add(udf(part))
    return acc


def clean(col):
    return [x or "" for x in TABLE.column(col).to_pylist()]


@pytest.mark.parametrize("refs", [("ref",), ("ref", "ref2")])
def test_overall_and_group_scores_equal_sacrebleu(refs):
    s = spec(references=refs)
    acc = run(s)
    overall = finalize(acc.overall(), s)
    ref_streams = [clean(r) for r in refs]
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        expected = metric.corpus_score(clean("hyp"), ref_streams)
        assert overall["scores"][name]["score"] == expected.score
        assert overall["scores"][name]["signature"] == str(metric.get_signature())
    groups = {k: finalize(v, s) for k, v in acc.kind("group").items()}
    rows_b = [2, 3, 4]
    hyp_b = [clean("hyp")[i] for i in rows_b]
    expected_b = BLEU().corpus_score(hyp_b, [[r[i] for i in rows_b] for r in ref_streams])
    assert groups["b"]["scores"]["bleu"]["score"] == expected_b.score
    assert groups["c"]["sentences"] == 1  # a group with one sentence
    assert overall["null_hypotheses"] == 1 and overall["null_references"] == 1
    assert groups["a"]["null_hypotheses"] == 1 and groups["b"]["null_references"] == 1


def test_list_column_of_references():
    table = TABLE.append_column("refs", pa.array([[a, b] for a, b in zip(REF, REF2, strict=True)]))
    s = spec(references=("refs",))
    overall = finalize(run(s, table).overall(), s)
    expected = BLEU().corpus_score(clean("hyp"), [clean("ref"), clean("ref2")])
    assert overall["scores"]["bleu"]["score"] == expected.score
    assert overall["scores"]["bleu"]["signature"].startswith("nrefs:2")


def test_length_buckets():
    assert bucket_name(1) == "01-10 words" and bucket_name(11) == "11-20 words" and bucket_name(99) == "41+ words"
    buckets = run(spec()).kind("length")
    assert {k: v["sentences"] for k, v in buckets.items()} == {"01-10 words": 4, "11-20 words": 1, "41+ words": 1}


@pytest.fixture(scope="module")
def corpus():
    """200 sentence pairs and two systems: a good one and a damaged copy."""
    rng = np.random.default_rng(0)
    words = "der die das ein eine Mann Frau Hund Katze läuft spielt sitzt im auf dem Park Gras rot blau".split()
    refs = [" ".join(rng.choice(words, size=rng.integers(4, 12))) for _ in range(200)]
    good = [r if rng.random() < 0.6 else " ".join(r.split()[:-1]) for r in refs]
    bad = [" ".join(w for w in g.split() if rng.random() < 0.8) for g in good]
    return refs, good, bad


def test_bootstrap_interval_close_to_sacrebleu(corpus):
    refs, good, _ = corpus
    table = pa.table({"hyp": good, "ref": refs})
    s = spec(group_by=(), length_column=None, bootstrap=1000, metrics=("bleu", "chrf"))
    ours = finalize(run(s, table, cut=77).overall(), s)["scores"]
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        theirs = metric.corpus_score(good, [refs], n_bootstrap=1000)
        assert ours[name]["score"] == theirs.score
        # Poisson vs multinomial resampling: same interval up to Monte-Carlo noise
        assert ours[name]["bootstrap"]["ci95_halfwidth"] == pytest.approx(theirs._ci, rel=0.25)
        lo, hi = ours[name]["bootstrap"]["ci95"]
        assert lo < theirs.score < hi


def test_paired_test_matches_sacrebleu_decisions(corpus):
    refs, good, bad = corpus
    near = list(good)
    near[3], near[10] = near[3] + " rot", " ".join(near[10].split()[:-1])  # barely different
    table = pa.table({"hyp": good, "ref": refs, "other": bad, "near": near})
    s = spec(group_by=(), length_column=None, bootstrap=1000, compare="other", metrics=("bleu",))
    ours = finalize(run(s, table).overall(), s)["scores"]["bleu"]["compare"]
    os.environ["SACREBLEU_SEED"] = "12345"
    _, theirs = PairedTest([("base", good), ("other", bad)], {"bleu": BLEU()}, references=[refs],
                           test_type="bs", n_samples=1000)()
    base, other = theirs["BLEU"]
    their_p = other.p_value
    assert ours["difference"] == pytest.approx(other.score - base.score)
    assert ours["p_value"] < 0.05 and their_p < 0.05  # a clearly worse system: significant for both
    s_near = spec(group_by=(), length_column=None, bootstrap=1000, compare="near", metrics=("bleu",))
    ours_near = finalize(run(s_near, table).overall(), s_near)["scores"]["bleu"]["compare"]["p_value"]
    _, theirs = PairedTest([("base", good), ("near", near)], {"bleu": BLEU()}, references=[refs],
                           test_type="bs", n_samples=1000)()
    assert ours_near > 0.05 and theirs["BLEU"][1].p_value > 0.05  # a negligible change: not significant for both


def test_sentence_scores_match_sacrebleu_sentence_level():
    out = SentenceScores(spec())(TABLE)
    bleu = BLEU(effective_order=True)
    for h, r, s in zip(clean("hyp"), clean("ref"), out.column("sentence_bleu").to_pylist(), strict=True):
        assert s == bleu.sentence_score(h, [r]).score
    assert out.column("sentence_chrf").to_pylist()[5] == CHRF().sentence_score("Ja.", ["Ja."]).score


def test_actor_memory_is_tracked_per_actor_and_call():
    acc = run(spec())
    memory = acc.actor_memory()
    assert memory["actor_calls"] == [2]  # one actor (this process), two calls
    # The report rounds to 0.1 MB; rounding is monotonic, so compare against the peak rounded the same way.
    peak = round(acc.actor_peak_private_mb, 1)
    assert 0 < memory["actor_private_mb_first_call"] <= peak
    assert 0 < memory["actor_private_mb_last_call"] <= peak


def test_missing_column_is_one_line_before_work(tmp_path, capsys):
    pq.write_table(TABLE, tmp_path / "t.parquet")
    assert score_main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--hypothesis-column", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing column 'nope'" in err[0]


UNEVEN_HYPS = ["the cat sat on a mat", "a dog", "two birds fly away now", "yes", "a red car", "it rains"]
UNEVEN_REFS = [["the cat sat on the mat", "a cat sat on a mat"], ["a dog runs in the park"],
               ["two birds fly", "birds fly away", "two birds fly away"], None, ["a red car"], ["it rains today"]]


@pytest.mark.parametrize("cut", [2, 3, 4])
def test_reference_lists_of_uneven_lengths_score_as_sacrebleu_with_a_variable_count(cut):
    """Each row is scored against its own references: a shorter list is not padded with "" (an empty
    reference removed the brevity penalty: BLEU 91.00 where sacreBLEU gives 82.34), and the signature says
    nrefs:var, as sacreBLEU's does for streams with None where a row has fewer references (issue 31).
    A null list is one empty reference, counted as a null reference."""
    table = pa.table({"hyp": UNEVEN_HYPS, "refs": UNEVEN_REFS, "g": ["a"] * 6, "src": ["x"] * 6})
    s = spec(references=("refs",))
    overall = finalize(run(s, table, cut=cut).overall(), s)
    width = max(len(r) for r in UNEVEN_REFS if r)
    streams = [[(r[k] if k < len(r) else None) if r else ("" if k == 0 else None) for r in UNEVEN_REFS]
               for k in range(width)]
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        expected = metric.corpus_score(UNEVEN_HYPS, streams)
        assert overall["scores"][name]["score"] == expected.score
        assert overall["scores"][name]["signature"] == str(metric.get_signature())
    assert "nrefs:var" in overall["scores"]["bleu"]["signature"] and overall["null_references"] == 1
    sentence = SentenceScores(s)(table).column("sentence_bleu").to_pylist()
    bleu = BLEU(effective_order=True)
    assert sentence == [bleu.sentence_score(h, [x for x in refs if x is not None]).score
                        for h, refs in zip(UNEVEN_HYPS, zip(*streams, strict=True), strict=True)]


def test_batches_of_even_reference_counts_that_differ_are_a_variable_count():
    table = pa.table({"hyp": UNEVEN_HYPS[:2], "refs": [["the cat sat", "a cat"], ["a dog"]], "g": ["a", "a"],
                      "src": ["x", "x"]})
    s = spec(references=("refs",))
    overall = finalize(run(s, table, cut=1).overall(), s)  # one row per batch: 2 references, then 1
    assert overall["scores"]["bleu"]["signature"].startswith("nrefs:var")
    alone = finalize(run(s, table.slice(0, 1), cut=1).overall(), s)
    assert alone["scores"]["bleu"]["signature"].startswith("nrefs:2")
