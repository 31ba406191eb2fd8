"""The demo a new engineer runs first, `python jobs/translate_corpus.py` with no flags, as a process of its own:
what it prints is what the README shows, and it raises no false alarm (issue 37)."""

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

ESCAPE = "\x1b"


def readme_sample_lines() -> list[str]:
    """The README's quickstart lines "of this form" (placeholders in <>)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("ends with", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def form(line: str) -> re.Pattern:
    parts = re.split(r"<[^>]+>", line)
    return re.compile("^" + r".+?".join(re.escape(p) for p in parts) + "$")


def test_the_default_demo_prints_no_false_alarm_counts_statuses_and_reports_progress(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, as a user gets
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "jobs/translate_corpus.py", "--output", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    lines = log.splitlines()
    errors = [x for x in lines if re.search(r"^\[[^\]]* E \d+ \d+\]|^error:|\bERROR\b", x)]
    assert not errors, errors  # core_worker.cc's actor-arguments error (ray#53727) among them
    assert "UserWarning" not in log and "DeprecationWarning" not in log
    assert ESCAPE not in log  # no colour codes in a log file
    assert re.search(r"^progress: 300/300 rows \(100%\), [\d.,]+ rows/s, done in \d+", proc.stdout, re.M)
    assert re.search(r"^progress: 0/300 rows \(0%\)", proc.stdout, re.M)
    # The last lines: statuses counted, and the paths last; each line of the README's form.
    stdout = proc.stdout.strip().splitlines()
    assert stdout[-1].startswith(f"output: {out}/translations/")
    status = next(x for x in stdout if x.startswith("status: "))
    assert status.startswith("status: 300 sentences in the output: ok 300, empty 0, split 0, truncated 0")
    sample = readme_sample_lines()
    tail = stdout[-len(sample):]
    for expected, got in zip(sample, tail, strict=True):
        assert form(expected).match(got), (expected, got)
    md = (out / "report.md").read_text()
    assert "**multi30k-en-de**" in md and "beam 5" in md.split("\n\n", 2)[1]
    import json

    report = json.loads((out / "report.json").read_text())
    assert "metadata" not in report["model"] and report["model"]["card"].endswith("multi30k-en-de/README.md")
    run, compute = report["run"], report["config"]["compute"]
    assert len(run["actor_rows"]) == compute["actors"] == compute["min_actors"] == compute["max_actors"]
