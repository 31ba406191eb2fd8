"""Shared fixtures: an S3-protocol server on loopback (moto), as s3fs's own suite does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str

    @property
    def storage_options(self) -> dict:
        return {"endpoint_url": self.endpoint, "key": "testing", "secret": "testing"}

    @property
    def env(self) -> dict:
        """Environment a child process (a Ray job) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)


@pytest.fixture(scope="session")
def s3_server():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto S3 server did not start") from None
            time.sleep(0.2)
    yield S3Server(f"http://127.0.0.1:{port}")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh bucket on the loopback server; returns its s3:// URI."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.filesystem().mkdir(name)
    return f"s3://{name}"


SAMPLE = os.path.join(ROOT, "samples", "multi30k-en-de")


@pytest.fixture(scope="session")
def sample_corpus():
    """The sample corpus shipped in the repo: 3 shards x 100 rows (id, source, reference, ...)."""
    return SAMPLE


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random tiny Transformer with a real SentencePiece model trained on the sample corpus."""
    import torch

    from model.formats import save_checkpoint
    from model.tokenizers import Tokenizer, train_sentencepiece
    from pipeline.io import read_table
    from tests.helpers import tiny_transformer

    table = read_table(SAMPLE)
    text = table.column("source").to_pylist() + table.column("reference").to_pylist()
    tok = Tokenizer(train_sentencepiece(text, vocab_size=400))
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny")
    save_checkpoint(path, tiny_transformer(tok.src_vocab_size), tok)
    return path


@pytest.fixture(scope="session")
def local_ray():
    """An in-process local Ray instance for tests that call jobs' functions directly.

    address="local" so the tests never join another Ray cluster running on the machine.
    """
    import ray

    os.environ["RAY_ADDRESS"] = "local"
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# Markers by folder: tests/unit starts no Ray (`pytest -m "not e2e and not integration"`), tests/integration
# starts a local Ray (the `local_ray` fixture or a job in a subprocess), tests/e2e a Ray head, nodes or S3.
FOLDER_MARKERS = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def marker_expression_matches(expr, markers: dict[str, bool]) -> bool:
    return expr.evaluate(lambda name, **_: markers[name])


def selects_ray_tests(config) -> bool:
    """Whether this run may select a test that starts Ray: `-m` lets an `integration` or `e2e` test through,
    and a path given (or the default `tests`) reaches beyond tests/unit."""
    import itertools
    import re

    from _pytest.mark.expression import Expression

    if config.option.markexpr:
        # Selected if some test marked integration or e2e, whatever its other markers (gpu, ...), matches.
        expr = Expression.compile(config.option.markexpr)
        names = sorted(set(re.findall(r"[A-Za-z_][\w.-]*", config.option.markexpr)) - {"and", "or", "not"}
                       | set(FOLDER_MARKERS))
        assignments = (dict(zip(names, values, strict=True))
                       for values in itertools.product((False, True), repeat=len(names)))
        if not any(marker_expression_matches(expr, on) for on in assignments
                   if any(on[marker] for marker in FOLDER_MARKERS)):
            return False
    unit = os.path.join(ROOT, "tests", "unit")
    paths = [os.path.abspath(os.path.join(str(config.invocation_params.dir), a.split("::")[0])) for a in config.args]
    return not paths or not all(p == unit or p.startswith(unit + os.sep) for p in paths)


def pytest_configure(config):
    """The unit tests share out over the machine's cores by default (pytest-xdist), so that
    `python -m pytest -m "not e2e and not integration"` takes a fraction of the time: they start no Ray
    (tests/unit/conftest.py checks), so nothing they do reaches another process. A run that may select a Ray
    test stays in one process: an end-to-end test's `ray stop` stops every Ray process on the machine, and
    xdist's `loadgroup` does not keep tests together under pytest 9 (it renames `item._nodeid`, which
    pytest 9 no longer reads). `-n 0` keeps one process, `-n N` sets the count."""
    if (not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput")
            or config.option.numprocesses is not None or config.option.usepdb or config.option.collectonly
            or selects_ray_tests(config)):
        return
    workers = min(len(os.sched_getaffinity(0)), 8)
    if workers > 1:  # xdist's own pytest_configure (trylast) starts the workers from these
        config.option.numprocesses, config.option.dist, config.option.tx = workers, "worksteal", ["popen"] * workers


def pytest_itemcollected(item):
    """Each test's marker from its folder, set as it is collected (before `-m` selects)."""
    folder = os.path.relpath(str(item.path), os.path.join(ROOT, "tests")).split(os.sep)[0]
    if folder in FOLDER_MARKERS:
        item.add_marker(FOLDER_MARKERS[folder])


def pytest_collection_modifyitems(config, items):
    """End-to-end tests first: they end with `ray stop`, which stops every Ray process on the machine,
    so they must not run while the in-process `local_ray` instance of other tests is up.
    Tests marked `gpu` are skipped on machines without CUDA."""
    items.sort(key=lambda item: 0 if "e2e" in item.keywords else 1)
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
