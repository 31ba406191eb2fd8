"""End to end as users run it: `ray start --head` on loopback with token authentication,
`ray job submit --working-dir .`, object storage on a loopback S3 server, `ray stop`.

Covers: corpus preparation to s3://, translation s3:// -> s3:// with report, an actor process
killed mid-run, and scoring of the written translations.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from sacrebleu.metrics import BLEU

from model.formats import load_checkpoint, save_checkpoint
from pipeline.io import read_table
from pipeline.memory import TranslationMemory
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e
RAY = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"


class Head:
    def __init__(self, env: dict, address: str):
        self.env, self.address = env, address

    def submit(self, *args: str, wait: bool = True, job_id: str | None = None,
               timeout: int = 600) -> subprocess.CompletedProcess:
        runtime_env = json.dumps({"excludes": ["outputs/", "work/", ".venv/", "*.log"]})
        cmd = [RAY, "job", "submit", "--address", self.address, "--working-dir", ROOT,
               "--runtime-env-json", runtime_env]
        cmd += [] if wait else ["--no-wait"]
        cmd += ["--submission-id", job_id] if job_id else []
        return subprocess.run([*cmd, "--", "python", *args], env=self.env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)

    def job(self, verb: str, job_id: str) -> str:
        res = subprocess.run([RAY, "job", verb, "--address", self.address, job_id], env=self.env,
                             capture_output=True, text=True, timeout=120)
        return res.stdout + res.stderr


@pytest.fixture(scope="module")
def head(s3_server, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Token authentication on for `ray start` and `ray job submit` alike (the Ray 2.60 default for new
    # clusters), with a token of the test's own in a file, as docs/operations.md tells users to do.
    token = tmp_path_factory.mktemp("auth") / "token"
    token.write_text(secrets.token_hex(32))
    env.update(s3_server.env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    dash = free_port()
    start = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--ray-client-server-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
             "--num-cpus=4", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield Head(env, f"http://127.0.0.1:{dash}")
    finally:
        # Plain `ray stop`: SIGTERM, then SIGKILL for whatever is left after its grace period.
        subprocess.run([RAY, "stop"], env=env, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def corpus(s3_server, sample_corpus, tmp_path_factory):
    """The sample corpus as text, turned into Parquet on S3 by the prepare job (run through the head)."""
    tmp = tmp_path_factory.mktemp("text")
    table = read_table(sample_corpus)
    (tmp / "en.txt").write_text("\n".join(table.column("source").to_pylist()) + "\n")
    (tmp / "de.txt").write_text("\n".join(table.column("reference").to_pylist()) + "\n")
    return tmp


def test_submit_translate_kill_score(head, s3_server, s3_bucket, corpus, tiny_checkpoint):
    fs = s3_server.filesystem()
    # 1. prepare: local text -> s3 Parquet in a date partition, as a Ray job (endpoint and credentials
    #    from the environment, as on a cluster with instance roles)
    day_in = f"{s3_bucket}/docs/date=2026-11-20"
    res = head.submit("jobs/prepare_corpus.py", "--source", str(corpus / "en.txt"), "--target",
                      str(corpus / "de.txt"), "--output", day_in, "--rows-per-shard", "100",
                      "--metadata", "domain=flickr")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert len(fs.glob(f"{day_in[5:]}/*.parquet")) == 3
    # 1b. tokenizer and a few Ray Train steps (2 CPU workers, DDP) as Ray jobs, checkpoints on S3
    res = head.submit("jobs/train_tokenizer.py", "--input", day_in, "--output", f"{s3_bucket}/tok",
                      "--vocab-size", "300")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    res = head.submit("jobs/train_model.py", "--train", day_in, "--valid", day_in, "--valid-max-sentences", "8",
                      "--tokenizer", f"{s3_bucket}/tok", "--output", f"{s3_bucket}/trained", "--layers", "1",
                      "--d-model", "32", "--heads", "2", "--ff-dim", "64", "--num-workers", "2",
                      "--cpus-per-worker", "0.5", "--data-cpus", "0.25", "--torch-threads", "1", "--max-steps", "6",
                      "--validate-every", "3", "--log-every", "2", "--max-tokens", "400", "--warmup", "2")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "[train] step 2 " in res.stdout and "validation step 6" in res.stdout  # readable progress
    assert fs.exists(f"{s3_bucket[5:]}/trained/last/config.json")
    model = f"{s3_bucket}/models/tiny"
    save_checkpoint(model, load_checkpoint(tiny_checkpoint).model, load_checkpoint(tiny_checkpoint).tokenizer,
                    storage_options=s3_server.storage_options)

    # 2. the nightly script: translate the partition s3 -> s3 through `ray job submit`
    fast = "--beam-size 2 --max-len-a 0 --max-len-b 8 --cpus-per-actor 1 --actors 1"
    env = head.env | {"RAY_ADDRESS": head.address, "INPUT_PREFIX": f"{s3_bucket}/docs",
                      "OUTPUT_PREFIX": f"{s3_bucket}/translations", "EXTRA_ARGS": f"--model {model} {fast}"}
    res = subprocess.run(["bash", "scripts/nightly.sh", "2026-11-20"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "translated 300 sentences" in res.stdout and "testing" not in res.stdout  # no secrets in logs
    day_out = f"{s3_bucket}/translations/date=2026-11-20"
    report = json.loads(fs.cat_file(f"{day_out[5:]}/report.json"))
    assert "testing" not in json.dumps(report)
    with fs.open(f"{day_out[5:]}/translations/part-00001.parquet", "rb") as fh:
        assert pq.read_table(fh).num_rows == 100
    out = read_table(f"{day_out}/translations", storage_options=s3_server.storage_options)
    ids = out.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 300
    bleu = BLEU().corpus_score(out.column("translation").to_pylist(), [out.column("reference").to_pylist()])
    assert report["overall"]["scores"]["bleu"]["score"] == pytest.approx(bleu.score, abs=1e-9)
    assert set(report["groups"]) == {"part-00000.parquet", "part-00001.parquet", "part-00002.parquet"}

    # 3. an actor process killed mid-run: the job still finishes with every id exactly once
    res = head.submit("jobs/translate_corpus.py", "--input", day_in, "--output", f"{s3_bucket}/killed",
                      "--model", model, "--batch-rows", "10", "--beam-size", "4", "--max-len-a", "0",
                      "--max-len-b", "30", "--cpus-per-actor", "1", "--actors", "1", "--memory", f"{s3_bucket}/tm",
                      wait=False, job_id=(job_id := "kill-test"))
    assert res.returncode == 0, res.stderr
    deadline = time.time() + 300
    translator = "MapBatches\\(Translator\\)"
    while True:  # wait until some output is written while the model actor is still working
        fs.invalidate_cache()
        parts = fs.glob(f"{s3_bucket[5:]}/killed/_parts/*/part-*.parquet")
        alive = subprocess.run(["pgrep", "-f", translator], capture_output=True).returncode == 0
        if parts and alive:
            break
        assert time.time() < deadline, (f"no output while the model actor was alive (parts {len(parts)}, actor alive "
                                        f"{alive}): {head.job('status', job_id)} {head.job('logs', job_id)[-3000:]}")
        time.sleep(0.2)
    killed = subprocess.run(["pkill", "-9", "-f", translator], capture_output=True)
    assert killed.returncode == 0, "no Translator actor process to kill"
    while "succeeded" not in (status := head.job("status", job_id).lower()):
        if "failed" in status or time.time() > deadline:
            pytest.fail(f"job after the kill: {status}\n{head.job('logs', job_id)[-6000:]}")
        time.sleep(2)
    killed_out = read_table(f"{s3_bucket}/killed/translations", storage_options=s3_server.storage_options)
    assert sorted(killed_out.column("id").to_pylist()) == sorted(ids)
    # ... and its translation memory on S3 holds each distinct sentence once, written as its shard committed.
    memory = TranslationMemory(f"{s3_bucket}/tm", s3_server.storage_options).dataset()
    keys = memory.to_table(columns=["key"]).column("key").to_pylist()
    used = json.loads(fs.cat_file(f"{s3_bucket[5:]}/killed/report.json"))["run"]["memory"]
    assert len(keys) == len(set(keys)) == used["written"] > 250 and used["misses"] == killed_out.num_rows

    # 4. score the written translations by group, through the head as well
    res = head.submit("jobs/score_corpus.py", "--input", f"{day_out}/translations", "--output",
                      f"{s3_bucket}/scores", "--group-by", "domain", "--confidence", "--bootstrap-samples", "100")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    scores = json.loads(fs.cat_file(f"{s3_bucket[5:]}/scores/report.json"))
    assert scores["overall"]["scores"]["bleu"]["score"] == pytest.approx(bleu.score, abs=1e-9)
    assert list(scores["groups"]) == ["flickr"]
    assert fs.cat_file(f"{s3_bucket[5:]}/scores/scores_by_group.png")[:4] == b"\x89PNG"
