"""bench/gpu_check_summary.py reads what a GPU machine handed back, also when only some files came back."""

import importlib.util
import json
import os

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("gpu_check_summary", os.path.join(ROOT, "bench", "gpu_check_summary.py"))
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)

PRINTOUT = """made /tmp/site/ray/core/src/ray/gcs/gcs_server executable
== env (limit 30s): bash -c
  nvidia-smi; echo
   exit 0 in 9s
== tests (limit 240s): python3 -m pytest -m gpu
   exit 124 in 244s
== job-half (limit 120s): python3 jobs/translate_corpus.py --gpus-per-actor 0.5
   exit 0 in 58s
== engines (limit 300s): python3 bench/engines.py --device cuda
"""


def test_steps_come_from_the_printout_when_summary_tsv_is_missing(tmp_path):
    (tmp_path / "check.log").write_text(PRINTOUT)
    steps = summary.steps(str(tmp_path))
    assert [(s["step"], s["exit"], s["status"], s["seconds"]) for s in steps] == [
        ("env", 0, "ok", 9), ("tests", 124, "timed out", 244), ("job-half", 0, "ok", 58),
        ("engines", None, "cut off (the machine's time ran out)", None)]


def test_tests_come_from_pytest_short_summary_without_junit(tmp_path):
    (tmp_path / "tests_job.log").write_text(
        "PASSED tests/test_gpu.py::test_the_job_on_a_whole_gpu\n"
        "FAILED tests/test_gpu.py::test_training_on_gpu - SystemExit: 1\n"
        "tests/test_gpu.py::test_other PASSED   [ 50%]\n")
    assert summary.tests(str(tmp_path)) == [
        {"test": "test_gpu::test_the_job_on_a_whole_gpu", "outcome": "passed", "seconds": None, "message": ""},
        {"test": "test_gpu::test_training_on_gpu", "outcome": "failed", "seconds": None, "message": "SystemExit: 1"}]


def test_the_job_lines_and_a_teacher_curve_are_kept(tmp_path):
    (tmp_path / "job-half.log").write_text(
        "noise\n\x1b[36m(MapWorker pid=1)\x1b[0m model actor vm:1 on H200: token budget 9 (1 KiB per token)\n"
        "translated 30 sentences (0 sentences already done) in 1 shards in 1.0 s (9 target tokens/s)\n"
        "BLEU 39.81 on 30 sentences (nrefs:1)\n")
    (tmp_path / "teacher_training_log.jsonl").write_text(
        json.dumps({"epoch": 1, "step": 61, "target_tokens": 10, "val_bleu": 0.0176, "lr": 1.0}) + "\n")
    (tmp_path / "teacher.log").write_text("(RayTrainWorker) [train] step 50 | epoch 1 | lr 1e-4 | 10,213 tgt tok/s |\n")
    result = summary.summarize(str(tmp_path), "2026-12-04", [])
    assert result["job_half"] == ["model actor vm:1 on H200: token budget 9 (1 KiB per token)",
                                  "translated 30 sentences (0 sentences already done) in 1 shards in 1.0 s "
                                  "(9 target tokens/s)", "BLEU 39.81 on 30 sentences (nrefs:1)"]
    assert result["teacher"] == {"validations": [{"epoch": 1, "step": 61, "target_tokens": 10, "val_bleu": 0.02}],
                                 "target_tokens_per_second": 10213}
