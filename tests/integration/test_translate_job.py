"""The translation job end to end in a local Ray instance: bad input, resume, actor count, errors."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER

from jobs.translate_corpus import main as translate
from pipeline.io import read_table

FAST = ["--beam-size", "2", "--max-len-a", "0", "--max-len-b", "6", "--batch-rows", "64", "--cpus-per-actor", "1",
        "--actors", "1"]


def run(tiny_checkpoint, input_uri, output, *extra):
    return translate(["--input", input_uri, "--output", output, "--model", tiny_checkpoint, *FAST, *extra])


def outputs(out_dir):
    return read_table(os.path.join(out_dir, "translations"))


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    """Two shards with null, empty, whitespace and over-long sources, plus a zero-row shard."""
    root = tmp_path_factory.mktemp("bad")
    long = " ".join(["A man in a blue shirt is standing on a ladder."] * 12)
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "source": ["A dog runs.", None, "", long],
                             "reference": ["Ein Hund rennt.", "Nichts.", None, "Lang."], "doc": ["d1"] * 4}),
                   root / "a.parquet")
    pq.write_table(pa.table({"id": [5, 6], "source": ["   ", "Two girls play."], "reference": ["", "Zwei Mädchen."],
                             "doc": ["d2", "d2"]}), root / "b.parquet")
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "source": pa.array([], pa.string()),
                             "reference": pa.array([], pa.string()), "doc": pa.array([], pa.string())}),
                   root / "c.parquet")
    return str(root)


def test_bad_inputs_every_id_once_and_report_matches_sacrebleu(local_ray, tiny_checkpoint, bad_corpus, tmp_path,
                                                                capsys):
    out = str(tmp_path / "out")
    assert run(tiny_checkpoint, bad_corpus, out, "--max-source-tokens", "32") == 0
    table = outputs(out)
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3, 4, 5, 6]
    status = dict(zip(table.column("id").to_pylist(), table.column("status").to_pylist(), strict=True))
    # The random tiny model never ends a sentence: every decoded row is cut at the length limit, and that
    # status wins over split (row 4); Tokenize's split is tested in test_translate_stages.py.
    assert status == {1: "length_limit", 2: "empty", 3: "empty", 4: "length_limit", 5: "empty", 6: "length_limit"}
    assert pq.read_table(os.path.join(out, "translations", "c.parquet")).num_rows == 0  # zero-row shard
    assert pq.read_table(os.path.join(out, "translations", "a.parquet")).column("id").to_pylist() == [1, 2, 3, 4]

    report = json.load(open(os.path.join(out, "report.json")))
    run_stats = report["run"]
    for key in ("sentences", "shards", "source_tokens", "target_tokens", "seconds", "target_tokens_per_second",
                "padding_efficiency"):
        assert key in run_stats
    assert run_stats["sentences"] == 6 and run_stats["shards"] == 3
    # actors' decoding time: positive, and within the run's wall time (one actor here)
    assert 0 < run_stats["actor_decode_seconds"] <= run_stats["seconds"]
    assert run_stats["sentences_per_actor_second"] >= run_stats["sentences_per_second"]
    assert set(report["groups"]) == {"a.parquet", "b.parquet", "c.parquet"}
    assert report["overall"]["status"] == {"empty": 3, "length_limit": 3}
    assert report["groups"]["a.parquet"]["status"] == {"empty": 2, "length_limit": 2}
    assert report["overall"]["null_references"] == 1
    hyps = table.column("translation").to_pylist()
    refs = [r or "" for r in table.column("reference").to_pylist()]
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        expected = metric.corpus_score(hyps, [refs])
        assert report["overall"]["scores"][name]["score"] == pytest.approx(expected.score, abs=1e-9)
        assert report["overall"]["scores"][name]["signature"] == str(metric.get_signature())
    assert "BLEU" in open(os.path.join(out, "report.md")).read()
    assert "translated 6 sentences" in capsys.readouterr().out


def test_resume_translates_only_what_is_missing(local_ray, tiny_checkpoint, sample_corpus, tmp_path):
    out = str(tmp_path / "out")
    assert run(tiny_checkpoint, sample_corpus, out) == 0
    first = {n: outputs(out).to_pylist() for n in ("all",)}["all"]
    trans = tmp_path / "out" / "translations"
    kept = {p.name: p.stat().st_mtime_ns for p in trans.iterdir()}

    # Simulate a run killed part-way: shard 1 never committed, half its rows in a part file.
    victim = trans / "part-00001.parquet"
    done = pq.read_table(victim).slice(0, 40)
    victim.unlink()
    (tmp_path / "out" / "_stats" / "part-00001.parquet.json").unlink()
    parts = tmp_path / "out" / "_parts" / "part-00001.parquet"
    parts.mkdir(parents=True)
    pq.write_table(done, parts / "part-earlier.parquet")

    assert run(tiny_checkpoint, sample_corpus, out) == 0
    report = json.load(open(tmp_path / "out" / "report.json"))
    assert report["run"]["sentences"] == 60  # only the missing rows were decoded
    assert report["run"]["skipped_sentences"] == 240
    assert report["overall"]["sentences"] == 300
    for name, mtime in kept.items():
        if name != victim.name:
            assert (trans / name).stat().st_mtime_ns == mtime  # finished output untouched
    assert outputs(out).to_pylist() == first  # same rows, same order, same translations

    # A third run has nothing left to do.
    assert run(tiny_checkpoint, sample_corpus, out) == 0
    assert json.load(open(tmp_path / "out" / "report.json"))["run"]["sentences"] == 0
    # Resuming with other decoding settings would mix outputs: refused before any work.
    assert run(tiny_checkpoint, sample_corpus, out, "--beam-size", "3") == 2
    # The output records the precision as asked ("auto", whatever it resolves to on the hardware of each
    # run; the report counts what each row was decoded in), and another setting is another system.
    assert json.load(open(tmp_path / "out" / "_run.json"))["precision"] == "auto"
    # 40 rows came from a part written by hand above, as by a version that did not record it.
    assert json.load(open(tmp_path / "out" / "report.json"))["overall"]["decoded_with"] == {"fp32": 260,
                                                                                           "unrecorded": 40}
    assert run(tiny_checkpoint, sample_corpus, out, "--precision", "int8") == 2
    # ... and so is another engine.
    assert run(tiny_checkpoint, sample_corpus, out, "--engine", "ctranslate2") == 2

    # A run that died between writing a shard's statistics and removing its parts left stale parts:
    # the next run removes them (and translates nothing).
    stale = tmp_path / "out" / "_parts" / "part-00001.parquet"
    stale.mkdir(parents=True)
    pq.write_table(pq.read_table(trans / "part-00001.parquet").slice(0, 5), stale / "part-x.parquet")
    assert run(tiny_checkpoint, sample_corpus, out) == 0
    assert not (tmp_path / "out" / "_parts").exists()


def test_one_failed_shard_commit_does_not_stop_the_others(local_ray, tiny_checkpoint, sample_corpus, tmp_path,
                                                          capsys):
    from model.storage import resolve
    from pipeline.inputs import INPUT_VERSION, input_version

    out = tmp_path / "out"
    # A part file with an id the input does not have, recorded as made from the input as it is (a part from
    # another version of the input would be checked row by row and dropped: test_resume.py).
    stray = out / "_parts" / "part-00001.parquet"
    stray.mkdir(parents=True)
    shard = os.path.join(sample_corpus, "part-00001.parquet")
    row = pq.read_table(shard).slice(0, 1).to_pylist()[0]
    row.update(id="not-in-the-input", translation="x", status="ok")
    version = input_version(resolve(shard)[0], shard, pq.read_metadata(shard).num_rows)
    table = pa.Table.from_pylist([row])
    pq.write_table(table.replace_schema_metadata({INPUT_VERSION: version.key()}), stray / "part-stray.parquet")
    assert run(tiny_checkpoint, sample_corpus, str(out)) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "part-00001.parquet" in err[0] and "ids not in the input" in err[0]
    report = json.load(open(out / "report.json"))
    assert set(report["groups"]) == {"part-00000.parquet", "part-00002.parquet"}
    assert set(report["run"]["failed_shards"]) == {"part-00001.parquet"}
    assert (out / "translations" / "part-00000.parquet").exists()
    assert not (out / "translations" / "part-00001.parquet").exists()
    # With the stray part gone, a re-run finishes the shard and nothing else.
    (stray / "part-stray.parquet").unlink()
    assert run(tiny_checkpoint, sample_corpus, str(out)) == 0
    report = json.load(open(out / "report.json"))
    assert report["overall"]["sentences"] == 300 and "failed_shards" not in report["run"]
    assert not (out / "_parts").exists()


def test_output_does_not_depend_on_the_number_of_actors(local_ray, tiny_checkpoint, sample_corpus, tmp_path):
    assert run(tiny_checkpoint, sample_corpus, str(tmp_path / "one"), "--actors", "1") == 0
    assert run(tiny_checkpoint, sample_corpus, str(tmp_path / "two"), "--actors", "2", "--batch-rows", "16") == 0
    for shard in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        one = pq.read_table(tmp_path / "one" / "translations" / shard)
        two = pq.read_table(tmp_path / "two" / "translations" / shard)
        assert one.equals(two)


@pytest.mark.parametrize("case", ["missing column", "not parquet", "unknown model", "duplicate id"])
def test_bad_arguments_fail_before_decoding_with_one_line(tiny_checkpoint, sample_corpus, tmp_path, capsys, case):
    model, input_uri = tiny_checkpoint, sample_corpus
    extra = []
    if case == "missing column":
        extra = ["--source-column", "text"]
    elif case == "not parquet":
        (tmp_path / "x.parquet").write_text("hello")
        input_uri = str(tmp_path / "x.parquet")
    elif case == "duplicate id":
        (tmp_path / "in").mkdir()
        pq.write_table(pa.table({"id": [1, 2], "source": ["A dog.", "A cat."]}), tmp_path / "in" / "a.parquet")
        pq.write_table(pa.table({"id": [3, 2], "source": ["A cow.", "A hen."]}), tmp_path / "in" / "b.parquet")
        input_uri = str(tmp_path / "in")
    else:
        model = str(tmp_path / "no-model")
    code = translate(["--input", input_uri, "--output", str(tmp_path / "o"), "--model", model, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert {"missing column": "'text'", "not parquet": "x.parquet", "unknown model": "no-model",
            "duplicate id": "id 2 appears in both"}[case] in err[0]
    assert not (tmp_path / "o").exists()  # nothing written


def test_the_job_decodes_with_the_ctranslate2_engine(local_ray, tiny_checkpoint, sample_corpus, tmp_path):
    pytest.importorskip("ctranslate2")
    out = str(tmp_path / "out")
    assert run(tiny_checkpoint, sample_corpus, out, "--engine", "ctranslate2", "--metrics", "bleu") == 0
    table = outputs(out)
    assert sorted(table.column("id").to_pylist()) == sorted(read_table(sample_corpus).column("id").to_pylist())
    assert set(table.column("status").to_pylist()) == {"length_limit"}  # the random tiny model never ends
    assert all(t for t in table.column("translation").to_pylist())
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["decode"]["engine"] == "ctranslate2" and report["run"]["sentences"] == 300


def test_shards_commit_while_the_others_translate_and_a_failed_early_commit_is_retried(
        local_ray, tiny_checkpoint, sample_corpus, tmp_path):
    """Each shard's commit starts as soon as its last row is written, inside the pipeline. A commit
    started too early (here by hand, before any row of the shard exists) fails, and the finish retries it."""
    from jobs.cli import parse_config
    from jobs.translate_corpus import Commits, TranslateConfig, claim, hardware_for, inspect_inputs, run_pipeline

    out = str(tmp_path / "out")
    cfg = parse_config(TranslateConfig, ["--input", sample_corpus, "--output", out, "--model", tiny_checkpoint,
                                         *FAST, "--batch-rows", "16", "--metrics", "bleu"])
    plan = inspect_inputs(cfg)
    cfg = hardware_for(cfg, 0, 4)
    states = claim(cfg, cfg, plan)
    commits = Commits(cfg, plan, states)
    commits.start("part-00002.parquet")  # no part file yet: this commit fails with rows missing
    started = []
    start = commits.start
    commits.start = lambda name: (started.append(name), start(name))
    stats, translated = run_pipeline(cfg, plan, states, commits)
    assert translated == 3 and stats.sentences == 300
    assert sorted(started) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    shard_stats, failed = commits.finish()
    assert failed == {} and sorted(shard_stats) == sorted(started)
    assert all(shard_stats[name]["sentences"] == 100 for name in started)
    assert not os.path.exists(os.path.join(out, "_parts"))
    assert outputs(out).num_rows == 300


def test_a_second_run_into_a_live_output_exits_3_naming_the_holder_without_starting_ray(
        tiny_checkpoint, sample_corpus, tmp_path, capsys, monkeypatch):
    """Issue 31: two runs into one output were not kept apart. The second exits at once with one line."""
    import pipeline.cluster
    from model.storage import resolve
    from pipeline.output import Lease, lease_store

    monkeypatch.setattr(pipeline.cluster, "init_ray", lambda *a: pytest.fail("Ray was started"))
    out = str(tmp_path / "out")
    holder = Lease(lease_store(*resolve(out)), out, timeout=60)
    holder.acquire()
    try:
        assert translate(["--input", sample_corpus, "--output", out, "--model", tiny_checkpoint]) == 3
    finally:
        holder.release()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"pid {holder.pid}" in err[0]
    assert "--wait-for-lease" in err[0]
    assert sorted(os.listdir(out)) == ["_lease.lock"]  # nothing written, and the holder's lease is gone


def test_a_run_waits_for_the_lease_when_asked_and_releases_it_when_done(tiny_checkpoint, sample_corpus, tmp_path,
                                                                       capsys, monkeypatch):
    import threading

    import jobs.translate_corpus as job
    from model.storage import resolve
    from pipeline.output import Lease, lease_store

    seen = []
    monkeypatch.setattr(job, "translate_and_report", lambda cfg, plan, started: seen.append(
        json.load(open(os.path.join(cfg.output, "_lease.json")))["pid"]) or 0)
    out = str(tmp_path / "out")
    holder = Lease(lease_store(*resolve(out)), out, timeout=60)
    holder.host = "another-host"  # (in this process, the holder is told apart by its host)
    holder.acquire()
    threading.Timer(1.0, holder.release).start()
    assert translate(["--input", sample_corpus, "--output", out, "--model", tiny_checkpoint,
                      "--wait-for-lease", "60"]) == 0
    assert seen == [os.getpid()] and "waiting up to 60 s for the run holding" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(out, "_lease.json"))  # released on the way out
    # ... on failure too
    monkeypatch.setattr(job, "translate_and_report", lambda cfg, plan, started: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        translate(["--input", sample_corpus, "--output", out, "--model", tiny_checkpoint])
    assert not os.path.exists(os.path.join(out, "_lease.json"))


def _write(table, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize("unit", ["sentence", "document"])
def test_a_shard_changed_after_its_commit_is_brought_in_line_and_reported(local_ray, tiny_checkpoint, sample_corpus,
                                                                          tmp_path, capsys, unit):
    """Issue 31: upstream appended rows to a committed shard and edited a source; the re-run skipped the shard,
    exited 0 and reported rows done that were not in the output. Now the output follows the input: added and
    edited rows translated (as a fresh run translates them), removed rows dropped, the rest kept untouched."""
    rows = pq.read_table(os.path.join(sample_corpus, "part-00000.parquet")).select(["id", "source", "reference"])
    if unit == "document":  # documents of three captions each, one per line
        texts = rows.column("source").to_pylist()
        rows = pa.table({"id": [f"doc{i}" for i in range(30)],
                         "source": ["\n".join(texts[3 * i:3 * i + 3]) for i in range(30)]})
    extra = ["--unit", "document"] if unit == "document" else []
    inp, out = tmp_path / "in", str(tmp_path / "out")
    _write(rows.slice(0, 20), inp / "a.parquet")
    _write(rows.slice(20, 5), inp / "b.parquet")
    assert run(tiny_checkpoint, str(inp), out, *extra) == 0
    first = {r["id"]: r for r in outputs(out).to_pylist()}
    b_written = (tmp_path / "out" / "translations" / "b.parquet").stat().st_mtime_ns

    # a.parquet: rows 25-27 appended, row 3's source replaced by row 29's, row 7 removed
    a = rows.slice(0, 20).to_pylist()
    a[3]["source"] = rows.slice(29, 1).to_pylist()[0]["source"]
    del a[7]
    new_a = pa.Table.from_pylist(a + rows.slice(25, 3).to_pylist(), schema=rows.schema)
    _write(new_a, inp / "a.parquet")
    capsys.readouterr()
    assert run(tiny_checkpoint, str(inp), out, *extra) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.load(open(os.path.join(out, "report.json")))
    expected = {"added": 3, "edited": 1, "removed": 1, "kept": 18}
    assert report["run"]["input_changes"] == {**expected, "shards": {"a.parquet": expected}}
    assert report["run"]["skipped_sentences"] == 18 + 5  # kept rows and the untouched shard: all in the output
    assert report["overall"]["sentences"] == 27 and report["groups"]["a.parquet"]["sentences"] == 22
    assert any(line.startswith("input changed since its commit in 1 shard(s): 3 ") for line in lines[-3:])
    assert (tmp_path / "out" / "translations" / "b.parquet").stat().st_mtime_ns == b_written
    got = pq.read_table(tmp_path / "out" / "translations" / "a.parquet").to_pylist()
    assert [r["id"] for r in got] == new_a.column("id").to_pylist()  # input order, every id once
    fresh = str(tmp_path / "fresh")
    assert run(tiny_checkpoint, str(inp), fresh, *extra) == 0
    fresh_rows = pq.read_table(os.path.join(fresh, "translations", "a.parquet")).to_pylist()
    for r, f in zip(got, fresh_rows, strict=True):
        assert r["translation"] == f["translation"]  # edited and added rows translated as a fresh run does
        if r["id"] in first and r["source"] == first[r["id"]]["source"]:
            assert r == first[r["id"]]  # kept rows as they were
    # Nothing changed since: nothing to do.
    assert run(tiny_checkpoint, str(inp), out, *extra) == 0
    report = json.load(open(os.path.join(out, "report.json")))
    assert report["run"]["sentences"] == 0 and "input_changes" not in report["run"]


def test_committed_shards_whose_input_file_is_gone_are_named(tmp_path):
    from jobs.cli import parse_config
    from jobs.translate_corpus import Plan, TranslateConfig, shards_not_in_input
    from pipeline.inputs import Shard

    out = tmp_path / "out"
    (out / "_stats" / "sub").mkdir(parents=True)
    for name in ("a.parquet", "sub/b.parquet"):
        (out / "_stats" / f"{name}.json").write_text("{}")
    cfg = parse_config(TranslateConfig, ["--output", str(out)])
    plan = Plan(None, [Shard("/in/a.parquet", "a.parquet", 1), Shard("/in/c.parquet", "c.parquet", 1)], None, None,
                [])
    assert shards_not_in_input(cfg, plan) == ["sub/b.parquet"]
