"""The driver's progress line (pipeline/output/progress.py) and the job's last lines (jobs/translate_corpus.py)."""

import io
from fractions import Fraction

import pytest

from pipeline.output.progress import Progress, duration, progress_bar, progress_line


def test_the_progress_line_gives_rows_done_of_total_the_rate_and_the_time_left():
    assert progress_line(0, 4_000_000, 12.0) == \
        "progress: 0/4,000,000 rows (0%), 0.0 rows/s, ETA unknown (no rows done yet)"
    assert progress_line(1_000_000, 4_000_000, 2_000.0) == \
        "progress: 1,000,000/4,000,000 rows (25%), 500.0 rows/s, ETA 1h40m"
    assert progress_line(Fraction(301, 2), 300, 10.0, "documents") == \
        "progress: 150/300 documents (50%), 15.0 documents/s, ETA 10s"
    assert progress_line(300, 300, 37.2) == "progress: 300/300 rows (100%), 8.1 rows/s, done in 37s"
    assert [duration(s) for s in (0, 42.4, 725, 11_220)] == ["0s", "42s", "12m05s", "3h07m"]
    assert progress_bar(150, 300, 10.0, width=10).startswith("[#####.....] 150/300 rows (50%)")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream", [io.StringIO(), FakeTerminal()], ids=["log", "terminal"])
def test_progress_is_plain_lines_in_a_log_and_one_bar_in_a_terminal(stream):
    now = [100.0]
    progress = Progress(300, interval=0, stream=stream, clock=lambda: now[0]).start()
    progress.add("150")
    now[0] += 30
    progress.add(Fraction(150))
    progress.stop()
    out = stream.getvalue()
    if isinstance(stream, FakeTerminal):
        assert out.startswith("\r[") and out.count("\r") == 2 and out.endswith("done in 30s\n")
        assert "\x1b" not in out
    else:
        assert out.splitlines() == ["progress: 0/300 rows (0%), 0.0 rows/s, ETA unknown (no rows done yet)",
                                    "progress: 300/300 rows (100%), 10.0 rows/s, done in 30s"]


def test_progress_is_reported_every_interval_by_a_thread():
    stream = io.StringIO()
    progress = Progress(10, interval=0.01, stream=stream).start()
    import time

    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.stop()
    assert stream.getvalue().count("progress: 0/10 rows") >= 3


def report(unit="sentence", status=None, sentences=300):
    return {"overall": {"sentences": sentences, "status": status or {"ok": 298, "empty": 1, "split": 1},
                        "scores": {"bleu": {"score": 39.67, "signature": "nrefs:1|tok:13a"}}},
            "run": {"sentences": 300, "skipped_sentences": 0, "seconds": 7.4, "target_tokens_per_second": 565.0,
                    "padding_efficiency": 0.86, "actor_decode_seconds": 6.0, "sentences_per_actor_second": 50.0,
                    "duplicate_segments": 0},
            "decode": {"unit": unit}}


def job_config(*argv):
    from jobs.cli import parse_config
    from jobs.translate_corpus import TranslateConfig

    return parse_config(TranslateConfig, ["--output", "/out", *argv])


def test_the_last_lines_count_statuses_and_name_failed_shards_before_the_paths(capfd):
    from jobs.translate_corpus import print_summary

    print_summary(job_config(), report(), 3, {"part-00001.parquet": "OSError: bucket gone"})
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("translated 300 sentences (0 sentences already done) in 3 shards in 7.4 s (565 target ")
    from pipeline.columns import RowStatus

    counts = {"ok": 298, "empty": 1, "split": 1}  # every status is named, zeros included, in RowStatus's order
    assert ("status: 300 sentences in the output: ok 298, empty 1, split 1, truncated 0, length_limit 0, "
            + ", ".join(f"{s} {counts.get(s, 0)}" for s in list(RowStatus)[5:])) in lines
    assert lines[-1] == "output: /out/translations/  report: /out/report.json (and report.md)"
    assert err.splitlines() == ["error: shard part-00001.parquet was not committed (OSError: bucket gone); re-run "
                                "the same command to finish it"]


def test_document_mode_counts_documents_and_segments_apart(capsys):
    from jobs.translate_corpus import print_summary

    print_summary(job_config("--unit", "document"), report("document", {"ok": 12}, 12), 3, {}, documents=12)
    out = capsys.readouterr().out
    assert out.startswith("translated 12 documents in 300 segments (0 documents already done) in 3 shards")
    assert "status: 12 documents in the output: ok 12," in out
    assert "BLEU 39.67 on 12 documents" in out
