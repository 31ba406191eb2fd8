"""How long the test suite takes: `python -m pytest` with the arguments given (none: the whole suite, as
CI runs it), timed, with its outcome counts per top-level test folder.

    python bench/test_suite.py                                   # the whole suite -> bench/results/test_suite.json
    python bench/test_suite.py tests/unit -m "not gpu" --out /tmp/unit.json

Writes the wall seconds of the pytest run (installation not included), pytest's exit status, the counts of
passed, skipped and failed tests (errors count as failed) overall and per folder (tests/unit,
tests/integration, tests/e2e), and each folder's summed test durations from pytest's JUnit XML (setup, call
and teardown). With pytest-xdist (`-n N`, and by default for a run of the unit tests only: tests/conftest.py)
tests run in several processes at once, so the
folders' sums are process-seconds and add up to more than the wall time. The README's Quickstart quotes it
(`python bench/make_docs.py`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "bench", "results", "test_suite.json")


def folder(case: ET.Element) -> str:
    """tests/<folder> of a JUnit testcase, from its classname (tests.unit.test_x.TestY -> tests/unit)."""
    parts = (case.get("classname") or "").split(".")
    if len(parts) >= 3 and parts[0] == "tests":
        return f"tests/{parts[1]}"
    return "tests" if parts[0] == "tests" else "other"


def outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        return "failed"
    return "skipped" if "skipped" in tags else "passed"


def summarize(junit_xml: str) -> tuple[dict, dict]:
    """Counts overall, and per folder counts with summed seconds, from pytest's --junitxml file."""
    total = {"passed": 0, "skipped": 0, "failed": 0}
    folders: dict[str, dict] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        result = outcome(case)
        total[result] += 1
        f = folders.setdefault(folder(case), {"passed": 0, "skipped": 0, "failed": 0, "test_seconds": 0.0})
        f[result] += 1
        f["test_seconds"] += float(case.get("time") or 0)
    for f in folders.values():
        f["test_seconds"] = round(f["test_seconds"], 1)
    return total, dict(sorted(folders.items()))


def machine() -> dict:
    import torch

    from bench.machine import cpu_info

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {**cpu_info(), "processor": platform.machine(), "python": platform.python_version(), "gpu": gpu}


XDIST_STARTED = re.compile(r"^(bringing up nodes|created: \d+/\d+ workers|\d+ workers \[)")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = OUT
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i:i + 2]
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", f"--junitxml={xml}", *args]
        start = time.monotonic()
        several = False  # pytest-xdist ran the tests in several processes (it says so as it starts them)
        with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                sys.stdout.write(line)
                several = several or bool(XDIST_STARTED.search(line))
        status = proc.returncode
        seconds = time.monotonic() - start
        if not os.path.exists(xml):
            print(f"pytest wrote no JUnit XML (exit status {status}); nothing written", file=sys.stderr)
            return status or 1
        total, folders = summarize(xml)
    result = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
              "machine": machine(), "command": " ".join(["python -m pytest", *args]).strip(),
              "pytest_args": args, "exit_status": status, "xdist": several,
              "wall_seconds": round(seconds, 1), **total, "folders": folders,
              "folder_seconds_are": "summed test durations (setup, call, teardown) from pytest's JUnit XML; with "
                                    "pytest-xdist these are process-seconds and add up to more than the wall time"}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"{result['wall_seconds']:.0f} s, {total['passed']} passed, {total['skipped']} skipped, "
          f"{total['failed']} failed -> {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
