"""Several Ray nodes on this machine (ray.cluster_utils.Cluster): a head with no CPUs that only drives, and
worker nodes, as clusters run. The jobs run against them the way users run them (RAY_ADDRESS), and
worker nodes are killed outright mid-run (`remove_node(allow_graceful=False)`), as a spot preemption does.

Covers: the translation job on several topologies (two 2-CPU workers, and the one such worker a lost node
leaves, in the node-loss tests; 1 + 4 CPUs); a worker node lost once a third of the output exists, in
sentence and in document mode, the same run finishing with every id once and the translations of an
uninterrupted run; training that loses a worker's node and resumes from its last checkpoint in the same
job; GPU nodes that an autoscaler (Ray's fake multi-node provider) starts from zero for the
model actors, and a re-run after they idled away.

The Cluster tests share one head (`head`: starting a head is most of what starting a small cluster costs)
and each sets the worker nodes it runs on; the head declares a killed node dead in ~3 s (`NODE_DEATH`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io import read_table
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
SHIPPED = os.path.join(ROOT, "models", "multi30k-en-de")
DECODE = ["--beam-size", "2", "--max-len-a", "1.2", "--max-len-b", "5"]
SHARDS, ROWS = 6, 48  # 288 sentences of the sample's 300
# How the head declares a node dead: health checks every second, dead after 3 failed in a row. A killed
# node's raylet refuses them at once, so its loss is seen in ~3 s instead of Ray's default ~15 s (3 s x 5),
# which each node-loss test waited. A live node's check fails only when it goes unanswered for
# health_check_timeout_ms (Ray's 10 s, kept), three times in a row.
NODE_DEATH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def env_for(address: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Token authentication off on both sides (the cluster is started by this process with the same).
    return {**env, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": ROOT}


class Nodes:
    """A head of no CPUs (it drives: the jobs' drivers and Ray's control plane) and the worker nodes each test
    asks for (`workers`). A worker node an earlier test left up is kept when it has the CPUs asked for, as
    on a cluster that runs one job after another."""

    def __init__(self):
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "_system_config": NODE_DEATH})
        self.cpus: dict = {}  # worker node -> its CPUs

    @property
    def address(self) -> str:
        return self.cluster.address

    def workers(self, *cpus: int) -> list:
        """One worker node per entry and no other, up and known to the head."""
        wanted, nodes = list(cpus), []
        for node, n in list(self.cpus.items()):
            if n in wanted:
                wanted.remove(n)
                nodes.append(node)
            else:
                self.cluster.remove_node(node)
                del self.cpus[node]
        for n in wanted:
            node = self.cluster.add_node(num_cpus=n)
            self.cpus[node] = n
            nodes.append(node)
        self.cluster.wait_for_nodes()  # the head agrees: the added ones alive, the removed ones dead
        return nodes

    def kill(self, node) -> None:
        """Every process of the node killed outright, as a spot preemption does."""
        self.cluster.remove_node(node, allow_graceful=False)
        del self.cpus[node]

    def node_of(self, pid: int):
        """The worker node that runs process `pid` (Ray's worker processes are their raylet's children)."""
        from ray._private import ray_constants

        raylets = {n.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: n for n in self.cpus}
        while pid > 1 and pid not in raylets:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the parent's
        return raylets.get(pid)


@pytest.fixture(scope="module")
def head():
    os.environ["RAY_AUTH_MODE"] = "disabled"  # token authentication off on both sides (see env_for)
    nodes = Nodes()
    try:
        yield nodes
    finally:
        nodes.cluster.shutdown()
        os.environ.pop("RAY_AUTH_MODE", None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_corpus):
    """6 shards of 48 sentences (the sample's first 288)."""
    root = tmp_path_factory.mktemp("corpus")
    table = read_table(sample_corpus)
    src, ref = table.column("source").to_pylist(), table.column("reference").to_pylist()
    for s in range(SHARDS):
        ids = range(s * ROWS, (s + 1) * ROWS)
        pq.write_table(pa.table({"id": [f"s{i}" for i in ids], "source": [src[i % 300] for i in ids],
                                 "reference": [ref[i % 300] for i in ids]}), root / f"part-{s:02d}.parquet")
    return str(root)


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory, corpus):
    """The first two shards of `corpus` (96 sentences)."""
    import shutil

    root = tmp_path_factory.mktemp("two_shards")
    for name in sorted(os.listdir(corpus))[:2]:
        shutil.copy(os.path.join(corpus, name), root / name)
    return str(root)


@pytest.fixture(scope="module")
def documents(tmp_path_factory, sample_corpus):
    """6 shards of 8 documents, each five sample sentences in two paragraphs."""
    root = tmp_path_factory.mktemp("docs")
    table = read_table(sample_corpus)
    src, ref = table.column("source").to_pylist(), table.column("reference").to_pylist()
    for s in range(6):
        docs, refs, ids = [], [], []
        for d in range(8):
            k = (s * 8 + d) * 5 % 295
            docs.append(" ".join(src[k:k + 3]) + "\n\n" + " ".join(src[k + 3:k + 5]))
            refs.append(" ".join(ref[k:k + 3]) + "\n\n" + " ".join(ref[k + 3:k + 5]))
            ids.append(f"d{s * 8 + d}")
        pq.write_table(pa.table({"id": ids, "source": docs, "reference": refs}), root / f"docs-{s}.parquet")
    return str(root)


def reference_translations(input_dir: str, unit: str) -> dict[str, str]:
    """What an uninterrupted run writes, computed here by the job's own stages in this process."""
    from model.decoding import DecodeConfig
    from pipeline.documents import unit_for
    from pipeline.settings import TranslationSettings
    from pipeline.stages import Detokenize, Tokenize, Translator

    settings = TranslationSettings(decode=DecodeConfig(beam_size=2, max_len_a=1.2, max_len_b=5), unit=unit)
    tok = Tokenize(SHIPPED, "source", 256, "split", {})
    tr = Translator(SHIPPED, settings.decode, "fp32", 24000, 1, {})
    detok = Detokenize(SHIPPED, 1, False, {})
    out = {}
    for path in sorted(glob.glob(f"{input_dir}/*.parquet")):
        table = pq.read_table(path)
        rows = table.append_column("path", pa.array([path] * table.num_rows))
        explode = unit_for(settings).explode("id", "source", settings.languages)
        segments = explode(rows) if explode else rows
        translated = detok(tr(tok(segments)))
        if explode:
            translated = unit_for(settings).assemble(path, table, translated, "id", "source")
        out.update(zip(translated.column("id").to_pylist(), translated.column("translation").to_pylist(),
                       strict=True))
    return out


def start_job(address: str, input_dir: str, output: str, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", input_dir, "--output",
           output, "--model", SHIPPED, "--metrics", "bleu", *DECODE, *flags]
    log = open(output + ".log", "w")
    return subprocess.Popen(cmd, env=env_for(address), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait(proc: subprocess.Popen, output: str, timeout: float = 420) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = -9
    with open(output + ".log") as f:
        return rc, f.read()


def committed(output: str) -> int:
    return len(glob.glob(f"{output}/translations/*.parquet"))


def when(condition, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Wait until `condition()` holds while the job runs; False if the job ended or time ran out first."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def outputs(output: str) -> dict[str, str]:
    table = read_table(f"{output}/translations")
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "an id was written twice"
    return dict(zip(ids, table.column("translation").to_pylist(), strict=True))


def fake_autoscaling_config(path: str, idle_minutes: float) -> None:
    """A cluster launcher config for Ray's fake multi-node provider: worker nodes are processes on this
    machine that the autoscaler starts and stops. GPUs are logical (declared to Ray); the model actors
    decode on the CPU there (NMT_GPU_STANDIN=cpu)."""
    types = {"ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
             "cpu": {"resources": {"CPU": 2}, "node_config": {}, "min_workers": 1, "max_workers": 1},
             "gpu": {"resources": {"CPU": 2, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1}}
    config = {"cluster_name": "fake", "max_workers": 2, "head_node_type": "ray.head.default",
              "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                           "disable_launch_config_check": True},
              "available_node_types": types, "auth": {}, "upscaling_speed": 1.0,
              "idle_timeout_minutes": idle_minutes, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
              "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
              "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
              "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": []}
    with open(path, "w") as f:
        json.dump(config, f)


def test_gpu_nodes_scale_from_zero_for_the_model_actors_and_back(two_shards, tmp_path):
    """No GPU node is up when the job starts; the job reads the autoscaler's node types, asks for GPU
    actors in bf16, the autoscaler starts the GPU node for them and stops it when idle. The same command
    run again afterwards (no GPU up any more) resolves alike and is not refused.

    First in the module: its `ray stop --force` stops every Ray process on the machine, which must not
    include the head the other tests share (it starts with the first of them)."""
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    config = str(tmp_path / "autoscaler.json")
    fake_autoscaling_config(config, idle_minutes=0.1)
    env = {**env_for("auto"), "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "NMT_GPU_STANDIN": "cpu"}
    subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
    subprocess.run([ray_cli, "start", "--head", f"--autoscaling-config={config}", "--num-cpus=0",
                    "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True,
                   timeout=180)
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", two_shards, "--output", out,
           "--model", SHIPPED, "--metrics", "bleu", *DECODE]
    try:
        first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=420)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "of 1 GPU each, bf16; chosen by the cluster's GPUs (0 up now, up to 1" in first.stdout
        report = json.loads(open(f"{out}/report.json").read())
        assert report["decode"]["precision"] == "bf16"
        assert report["overall"]["decoded_with"] == {"bf16": 2 * ROWS}

        def gpus_up() -> float:
            # The driver also prints the autoscaler's events ("Removing 1 nodes of type gpu (idle).").
            probe = "import ray; ray.init(); print('GPUS', ray.cluster_resources().get('GPU', 0))"
            res = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
            return float(re.search(r"^GPUS (\S+)$", res.stdout, re.M).group(1))

        deadline = time.time() + 120
        while gpus_up() and time.time() < deadline:  # the autoscaler stops the idle GPU node
            time.sleep(3)
        assert gpus_up() == 0
        again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"translated 0 sentences ({2 * ROWS:,} sentences already done)" in again.stdout
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=180)


@pytest.mark.parametrize("workers", [(1, 4)], ids=["1+4"])
def test_the_job_runs_on_clusters_of_several_nodes(workers, head, tiny_checkpoint, sample_corpus, tmp_path):
    """A CPU-less head and uneven workers: before, the model actors and the other stages left each node
    less than the whole CPU Ray Data's read stages asked for, and the job waited forever. (Two 2-CPU
    workers, and the one a lost node leaves, run in the node-loss tests.)"""
    head.workers(*workers)
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "translate_corpus.py"), "--input", sample_corpus,
           "--output", out, "--model", tiny_checkpoint, "--beam-size", "2", "--max-len-a", "0",
           "--max-len-b", "6", "--metrics", "bleu"]
    res = subprocess.run(cmd, env=env_for(head.address), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert len(outputs(out)) == 300
    assert "model actors:" in res.stdout and f"nodes of {', '.join(map(str, workers))} CPUs" in res.stdout


@pytest.mark.parametrize("unit", ["sentence", "document"])
def test_a_worker_node_lost_mid_run_and_the_same_run_finishes(unit, head, corpus, documents, tmp_path):
    """Two 2-CPU workers; once a third of the shards are committed, one is killed outright. Ray restarts
    the model actors on the survivor and re-runs what was lost: exit 0, every id once, the translations
    of an uninterrupted run."""
    input_dir = corpus if unit == "sentence" else documents
    expected = reference_translations(input_dir, unit)
    shards = len(glob.glob(f"{input_dir}/*.parquet"))
    out = str(tmp_path / "out")
    workers = head.workers(2, 2)
    proc = start_job(head.address, input_dir, out, "--unit", unit, "--batch-rows", "12" if unit == "sentence" else "5")
    try:
        assert when(lambda: committed(out) >= shards // 3, proc), "the job ended before a third was committed"
        head.kill(workers[1])
        lost_at = committed(out)
    except BaseException:
        proc.kill()  # not left running on the shared head
        raise
    rc, log = wait(proc, out)
    assert rc == 0, log[-4000:]
    assert "model actors:" in log and "nodes of 2, 2 CPUs" in log  # planned for both workers
    assert lost_at < shards, "the node was lost after the run had committed everything"
    assert outputs(out) == expected
    report = json.loads(open(f"{out}/report.json").read())
    assert list(report["overall"]["decoded_with"]) == ["fp32"]
    assert report["run"]["shards_translated"] == shards


def test_training_loses_a_worker_node_and_resumes_from_its_checkpoint_in_the_same_job(head, sample_corpus, tmp_path):
    from jobs.train_tokenizer import main as train_tokenizer

    tok = str(tmp_path / "tok")
    assert train_tokenizer(["--input", sample_corpus, "--output", tok, "--vocab-size", "200"]) == 0
    out = str(tmp_path / "model")
    cmd = [sys.executable, os.path.join(ROOT, "jobs", "train_model.py"), "--train", sample_corpus, "--tokenizer", tok,
           "--output", out, "--layers", "1", "--d-model", "32", "--heads", "2", "--ff-dim", "64",
           "--num-workers", "2", "--cpus-per-worker", "0.5", "--torch-threads", "1", "--data-cpus", "0.25",
           "--max-tokens", "300", "--max-steps", "40", "--validate-every", "10", "--log-every", "5",
           "--warmup", "2", "--max-failures", "2"]
    log_file = f"{out}/training_log.jsonl"
    head.workers(2, 2)
    train_log = str(tmp_path / "train.log")
    with open(train_log, "w") as log:
        proc = subprocess.Popen(cmd, env=env_for(head.address), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        def checkpointed():
            with contextlib.suppress(OSError):
                return len(open(log_file).read().splitlines()) >= 2
            return False

        try:
            assert when(checkpointed, proc, timeout=240), open(train_log).read()[-3000:]
            # The node of the rank-0 training worker (the one that logs): Ray Train packs both workers on
            # one node when they fit, and losing the other node would not touch the training.
            rank0 = re.search(r"\(RayTrainWorker pid=(\d+)\)\S* \[train\] step", open(train_log).read())
            node = head.node_of(int(rank0.group(1)))
            assert node is not None, "the training worker runs on no worker node"
            head.kill(node)
            rc = proc.wait(timeout=420)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = open(train_log).read()
    assert rc == 0, text[-4000:]
    # The worker group restarted from a checkpoint, not from step 0 (the last one the controller had
    # registered: the second one's log line may be written before its report reaches the controller) ...
    resumed = [int(m) for m in re.findall(r"\[train\] resumed from step (\d+)", text)]
    assert resumed and resumed[0] in (10, 20), text[-4000:]
    steps = [json.loads(line)["step"] for line in open(log_file)]
    # ... and the loss curve goes on from it: no step starts again from 0; a step logged after the
    # checkpoint and before the loss may be logged again by the restarted workers.
    assert steps[0] == 10 and steps[-1] == 40 and sorted(set(steps)) == list(range(10, 50, 10)), steps
