"""One scripts/gpu_check.sh folder -> bench/results/gpu_check.json, which bench/make_docs.py renders.

    python bench/gpu_check_summary.py runs/gpu_check-<time> [--out bench/results/gpu_check.json]

Keeps what the check found, failures included: the machine, each step's exit status and time, each
gpu-marked test's outcome (and the first line of its failure), the figures the tests print (half
precision against CPU fp32, the out-of-memory split), and every engine run that finished (also those
of an engines step that ran out of time, which never wrote its JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUS = {0: "ok", 124: "timed out"}


STEP_START = re.compile(r"^== (\S+) \(limit \d+s\)")
STEP_END = re.compile(r"^\s+exit (\d+) in (\d+)s$")


def steps(folder: str) -> list[dict]:
    path = os.path.join(folder, "summary.tsv")
    if not os.path.exists(path):
        return steps_from_output(os.path.join(folder, "check.log"))
    out = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            # A step's command may span lines (the env step's script): only lines with 4 fields and a
            # numeric exit status are steps.
            if len(parts) >= 3 and parts[1].isdigit():
                rc = int(parts[1])
                out.append({"step": parts[0], "exit": rc, "status": STATUS.get(rc, "failed"),
                            "seconds": int(parts[2])})
    return out


def steps_from_output(path: str) -> list[dict]:
    """The same steps from what the script printed (`bash scripts/gpu_check.sh DIR > DIR/check.log`): a
    machine that hands back only some of its files may keep the printout and lose summary.tsv."""
    if not os.path.exists(path):
        return []
    out, name = [], None
    with open(path) as f:
        for line in f:
            start, end = STEP_START.match(line), STEP_END.match(line)
            if start:
                if name:
                    out.append(cut_off(name))
                name = start[1]
            elif end and name:
                rc = int(end[1])
                out.append({"step": name, "exit": rc, "status": STATUS.get(rc, "failed"), "seconds": int(end[2])})
                name = None
    return out + ([cut_off(name)] if name else [])


def cut_off(name: str) -> dict:
    """A step that started and never said how it ended: the machine's own time limit stopped the script."""
    return {"step": name, "exit": None, "status": "cut off (the machine's time ran out)", "seconds": None}


SHORT_SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED) (?:\[\d+\] )?(?:tests/)?(\S+?\.py)::(\S+)(?: - (.*))?$")


def tests(folder: str) -> list[dict]:
    path = os.path.join(folder, "gpu_tests.xml")
    if not os.path.exists(path):
        return tests_from_output(folder)
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = cause(node)
                break
        out.append({"test": name, "outcome": outcome, "seconds": round(float(case.get("time", 0)), 1),
                    "message": message})
    return out


def tests_from_output(folder: str) -> list[dict]:
    """Outcomes from pytest's short summary (-rA) in tests*.log, where no JUnit file came back."""
    out = []
    for name in sorted(os.listdir(folder)):
        if not (name.startswith("tests") and name.endswith(".log")):
            continue
        with open(os.path.join(folder, name)) as f:
            for line in f:
                m = SHORT_SUMMARY.match(line.strip())
                if m:
                    out.append({"test": f"{m[2].removesuffix('.py')}::{m[3]}", "outcome": m[1].lower(),
                                "seconds": None, "message": (m[4] or "")[:300]})
    return out


TRAIN_STEP = re.compile(r"\[train\] step \d+ \| .* \| ([\d,]+) tgt tok/s")


def teacher(folder: str) -> dict | None:
    """A run of the teachers' recipe (scripts/train_distilled_model.sh) on the GPU, as far as it got: its
    validation curve and the training throughput its workers printed."""
    path = os.path.join(folder, "teacher_training_log.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        curve = [json.loads(line) for line in f if line.strip()]
    rates = []
    log = os.path.join(folder, "teacher.log")
    if os.path.exists(log):
        with open(log) as f:
            rates = [int(m[1].replace(",", "")) for m in map(TRAIN_STEP.search, f) if m]
    return {"validations": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in p.items()
                             if k in ("epoch", "step", "target_tokens", "seconds", "val_bleu")} for p in curve],
            "target_tokens_per_second": sorted(rates)[len(rates) // 2] if rates else None}


def cause(node) -> str:
    """The line that says why a test failed: the last raised error in its report (a subprocess's
    traceback shows there too), else the first line of pytest's message."""
    errors = re.findall(r"^E?\s*(\w+(?:Error|Exception): .+)$", node.text or "", re.M)
    if errors:
        return errors[-1].strip()[:300]
    return (node.get("message") or "").strip().split("\n")[0][:300]


PRINTED = (re.compile(r"^(bf16|fp16): BLEU \{'cpu fp32': ([\d.]+), '\w+': ([\d.]+)\}, (\d+) of (\d+) identical"),
           re.compile(r"^batches tried: (\[.*\])"))


def printed(folder: str) -> dict:
    """The figures tests/integration/test_gpu.py prints (pytest -rA shows them under 'Captured stdout')."""
    path = os.path.join(folder, "tests.log")
    found: dict = {"half_precision": [], "out_of_memory_batches": None}
    if not os.path.exists(path):
        return found
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = PRINTED[0].match(line)
            if m:
                found["half_precision"].append({"precision": m[1], "bleu_cpu_fp32": round(float(m[2]), 2),
                                                "bleu_gpu": round(float(m[3]), 2), "identical": int(m[4]),
                                                "sentences": int(m[5])})
            m = PRINTED[1].match(line)
            if m:
                found["out_of_memory_batches"] = json.loads(m[1])
    return found


JOB_PRINTED = re.compile(r"^(translated .+|decoding: .+|BLEU .+ sentences .+|.*model actor .+ token budget .+)$")


def job_printed(folder: str) -> list[str]:
    """The last lines the half-GPU job printed (sentences, time, decoding rate, BLEU, each actor's budget)."""
    path = os.path.join(folder, "job-half.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        found = [m[1] for m in map(JOB_PRINTED.match, f.read().splitlines()) if m]
    # Ray prefixes an actor's lines with its colored name: keep what the actor said.
    return [line[line.index("model actor"):] if "model actor" in line else line for line in found]


def engine_runs(folder: str) -> list[dict]:
    for name in ("engines_runs.jsonl", "engines.log"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path) as f:
                return [json.loads(line) for line in f if line.startswith("{\"sentences\"")]
    return []


def environment(folder: str) -> dict:
    path = os.path.join(folder, "env.log")
    env: dict = {}
    if not os.path.exists(path):
        return env
    with open(path) as f:
        text = f.read()
    m = re.search(r"^torch (\S+) cuda (\S+) device (.+?) memory GiB ([\d.]+)", text, re.M)
    if m:
        env.update(torch=m[1], cuda=m[2], gpu=m[3], gpu_memory_gib=float(m[4]))
    m = re.search(r"Driver Version: (\S+)", text)
    if m:
        env["driver"] = m[1]
    env["packages"] = dict(re.findall(r"^(ray|transformers|ctranslate2|sacrebleu|sentencepiece|pyarrow|numpy) (\S+)$",
                                      text, re.M))
    env["ctranslate2"] = env["packages"].get("ctranslate2") or "not installed"
    env["cublas"] = sorted(set(re.findall(r"libcublas\.so\.(\d+)", text)))
    return env


def summarize(folder: str, date: str, notes: list[str]) -> dict:
    result = {"date": date, "machine": environment(folder), "steps": steps(folder), "tests": tests(folder),
              "printed": printed(folder), "engine_runs": engine_runs(folder), "job_half": job_printed(folder),
              "teacher": teacher(folder), "notes": notes}
    engines_json = os.path.join(folder, "engines_gpu.json")
    result["engines_json_written"] = os.path.exists(engines_json)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--date", required=True, help="when the check ran (YYYY-MM-DD)")
    p.add_argument("--note", action="append", default=[], help="what the run taught, for the docs (repeatable)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "gpu_check.json"))
    args = p.parse_args()
    result = summarize(args.folder, args.date, args.note)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}: {len(result['steps'])} steps, {len(result['tests'])} tests, "
          f"{len(result['engine_runs'])} engine runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
