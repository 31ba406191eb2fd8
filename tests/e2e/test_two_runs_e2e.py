"""Two runs on one machine, as a cron retry next to a slow night starts them: each job without RAY_ADDRESS
starts its own Ray (issue 31: the second joined the first one's and both hung), and two runs into one output
are kept apart by the output's lease (pipeline/output/lease.py)."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipeline.io import read_table
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

FAST = ["--beam-size", "2", "--max-len-a", "0", "--max-len-b", "6", "--batch-rows", "32", "--actors", "1"]


def start(tiny_checkpoint, input_uri, output, *extra) -> subprocess.Popen:
    """The job as cron runs it: a process of its own, no RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = ROOT
    return subprocess.Popen([sys.executable, "jobs/translate_corpus.py", "--input", input_uri, "--output", output,
                             "--model", tiny_checkpoint, *FAST, *extra], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(job: subprocess.Popen, timeout: int = 900) -> tuple[int, str, str]:
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail(f"the job hung:\n{out[-3000:]}\n{err[-3000:]}")
    return job.returncode, out, err


def wait_for(path: str, job: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert job.poll() is None, job.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def every_id_once(output: str, sample_corpus: str) -> None:
    ids = read_table(os.path.join(output, "translations")).column("id").to_pylist()
    assert sorted(ids) == sorted(read_table(sample_corpus).column("id").to_pylist())


def test_two_jobs_on_one_machine_without_ray_address_both_finish(tiny_checkpoint, sample_corpus, tmp_path):
    first = start(tiny_checkpoint, sample_corpus, str(tmp_path / "a"))
    wait_for(str(tmp_path / "a" / "_lease.json"), first)
    time.sleep(5)  # the first job's Ray is up
    second = start(tiny_checkpoint, sample_corpus, str(tmp_path / "b"))
    for job, name in ((first, "a"), (second, "b")):
        code, out, err = finish(job)
        assert code == 0, out[-3000:] + err[-3000:]
        every_id_once(str(tmp_path / name), sample_corpus)


def test_a_second_run_into_a_live_output_is_refused_or_waits_and_the_first_finishes(tiny_checkpoint, sample_corpus,
                                                                                   tmp_path):
    out = str(tmp_path / "out")
    first = start(tiny_checkpoint, sample_corpus, out)
    wait_for(os.path.join(out, "_lease.json"), first)
    code, _, err = finish(start(tiny_checkpoint, sample_corpus, out))
    assert code == 3 and "is being written by another run" in err and f"pid {first.pid}" in err
    waiting = start(tiny_checkpoint, sample_corpus, out, "--wait-for-lease", "900")
    code, stdout, err = finish(first)
    assert code == 0, stdout[-3000:] + err[-3000:]
    code, stdout, err = finish(waiting)
    assert code == 0, stdout[-3000:] + err[-3000:]
    assert "waiting up to 900 s" in stdout and "translated 0 sentences (300 sentences already done)" in stdout
    every_id_once(out, sample_corpus)
    assert not os.path.exists(os.path.join(out, "_lease.json"))


def test_the_lease_of_a_killed_run_is_taken_over_and_the_output_finished(tiny_checkpoint, sample_corpus, tmp_path):
    out = str(tmp_path / "out")
    first = start(tiny_checkpoint, sample_corpus, out)
    wait_for(os.path.join(out, "_parts"), first)  # decoding has started
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its Ray, as an OOM kill or a lost machine would
    first.wait()
    assert os.path.exists(os.path.join(out, "_lease.json"))
    code, stdout, err = finish(start(tiny_checkpoint, sample_corpus, out))
    assert code == 0, stdout[-3000:] + err[-3000:]
    assert "took over the lease of a run that is gone" in stdout
    every_id_once(out, sample_corpus)
    for shard in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        assert pq.read_table(os.path.join(out, "translations", shard)).num_rows == 100
