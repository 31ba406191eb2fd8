"""Cluster configs: valid for Ray's launcher, no Ray port open to the internet, no credentials."""

import copy
import os
import subprocess
import sys
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from check_cluster_config import (  # noqa: E402
    check,
    credential_findings,
    exposed_ingress,
    schema_errors,
    start_command_problems,
    unnamed_resources,
)

LAUNCHER_CONFIGS = ["cluster.yaml", "deploy/gcp-cluster.yaml"]


def load(name):
    with open(os.path.join(ROOT, name)) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_configs_pass_every_check(name):
    assert check(os.path.join(ROOT, name)) == []


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_gpu_node_types_name_their_gpus_for_the_job_to_see(name, tmp_path):
    """The translation job reads the node types at start to know GPU nodes can come (none is up then):
    the gpu type names its GPU, and an empty entry is flagged."""
    from pipeline.cluster import _types_in_launcher_config

    config = load(name)
    assert config["available_node_types"]["gpu"]["resources"]["GPU"] == 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    types = _types_in_launcher_config(str(path))
    assert sum(r.get("GPU", 0) * n for r, n in types) == config["available_node_types"]["gpu"]["max_workers"]
    config["available_node_types"]["gpu"]["resources"] = {}
    assert [p for p in unnamed_resources(config) if p.startswith("node type gpu")]


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(max_worker=3),  # typo of max_workers
    lambda c: c["available_node_types"]["gpu"].update(min_worker=0),
    lambda c: c["provider"]["security_group"].update(IpPermission=[]),
    lambda c: c["docker"].update(imag="rayproject/ray"),
])
def test_a_typo_is_caught_by_the_schema(mutate):
    config = load("cluster.yaml")
    mutate(config)
    assert schema_errors(config)


@pytest.mark.parametrize("rule", [
    {"FromPort": 8265, "ToPort": 8265, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"FromPort": 10001, "ToPort": 10001, "IpProtocol": "tcp", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    {"FromPort": 6000, "ToPort": 7000, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
])
def test_an_exposed_ray_port_fails(rule):
    config = load("cluster.yaml")
    config["provider"]["security_group"]["IpPermissions"] = [rule]
    assert exposed_ingress(config)


def test_private_ingress_is_fine():
    config = load("cluster.yaml")
    config["provider"]["security_group"]["IpPermissions"] = [
        {"FromPort": 8265, "ToPort": 8265, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    assert exposed_ingress(config) == []


def test_dashboard_on_all_interfaces_or_auth_off_fails():
    config = load("cluster.yaml")
    bad = copy.deepcopy(config)
    bad["head_start_ray_commands"] = [c.replace("127.0.0.1", "0.0.0.0") for c in bad["head_start_ray_commands"]]
    assert start_command_problems(bad)
    bad = copy.deepcopy(config)
    bad["worker_start_ray_commands"] = [c.replace("RAY_AUTH_MODE=token ", "") for c in bad["worker_start_ray_commands"]]
    assert start_command_problems(bad)


@pytest.mark.parametrize("text", ["aws_access_key_id: AKIAABCDEFGHIJKLMNOP", "aws_secret_access_key: x",
                                  "  password: hunter2", "RAY_AUTH_TOKEN=0123456789abcdef0123"])
def test_credentials_are_found(text):
    assert credential_findings(text)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS + ["deploy/kuberay-rayjob.yaml", "deploy/runtime_env.yaml"])
def test_no_credentials_in_shipped_configs(name):
    with open(os.path.join(ROOT, name)) as f:
        assert credential_findings(f.read()) == []


def test_images_match_the_pinned_ray_and_python():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    ray_pin = next(d for d in deps if d.startswith("ray[")).split("==")[1]
    for name in LAUNCHER_CONFIGS:
        assert load(name)["docker"]["image"] == f"rayproject/ray:{ray_pin}-py311-gpu"
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        assert f"FROM rayproject/ray:{ray_pin}-py311-gpu" in f.read()


def test_kuberay_rayjob_manifest():
    with open(os.path.join(ROOT, "deploy", "kuberay-rayjob.yaml")) as f:
        docs = list(yaml.safe_load_all(f))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "RayJob"]
    job = docs[1]
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["entrypoint"].startswith("python jobs/translate_corpus.py ")
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    workers = [g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"]]
    assert {c["image"] for c in [head, *workers]} == {head["image"]}  # one image everywhere
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpu = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu")
    assert gpu["minReplicas"] == 0 and gpu["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] == "1"
    env = {e["name"]: e for e in head["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    # The submitter pod runs `ray job submit` (KubeRay fills in its command): the token must reach it too.
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert "command" not in submitter and submitter["image"] == head["image"]
    assert submitter["env"] == head["env"] and all(w["env"] == head["env"] for w in workers)


def test_nightly_script_checks_its_arguments():
    script = os.path.join(ROOT, "scripts", "nightly.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    res = subprocess.run(["bash", script, "20261120"], capture_output=True, text=True)
    assert res.returncode == 2 and "YYYY-MM-DD" in res.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "INPUT_PREFIX", "OUTPUT_PREFIX")}
    res = subprocess.run(["bash", script, "2026-11-20"], capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "RAY_ADDRESS" in res.stderr


def test_a_job_without_ray_address_starts_a_private_ray_never_joining_another(monkeypatch):
    """Issue 31: a second job on one machine joined the first one's local Ray (address "auto") and both
    hung. Without RAY_ADDRESS a job now starts its own instance; RAY_ADDRESS=auto still joins `ray start`."""
    import ray

    from pipeline.cluster import init_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    init_ray(3.5)
    assert [c["address"] for c in calls] == ["local"] and calls[0]["num_cpus"] >= 4
    for address in ("auto", "ray://head:10001", "127.0.0.1:6379"):
        calls.clear()
        monkeypatch.setenv("RAY_ADDRESS", address)
        init_ray(3.5)
        assert calls == [{"address": address}]


def test_a_run_with_nothing_written_says_what_it_waits_for():
    from pipeline.cluster import resource_note

    note = resource_note(120, 1.0, 1.0, {"CPU": 3.0}, {"CPU": 8.0, "GPU": 2.0})
    assert "waiting for resources: 3 of 8 CPUs and 0 of 2 GPUs free, a model actor needs 1 CPU and 1 GPU" in note
    assert "other jobs" in note and "\n" not in note
    assert "starting or loading" in resource_note(120, 1.0, 0.0, {"CPU": 3.0}, {"CPU": 8.0})


def fake_ray(tmp_path):
    """A `ray` on PATH that records its arguments and the authentication it was given, as the real
    `ray job submit` would read it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ray = bin_dir / "ray"
    ray.write_text("#!/usr/bin/env bash\n"
                   f"{{ echo \"args: $*\"; echo \"mode: ${{RAY_AUTH_MODE:-}}\"; "
                   f"echo \"token: ${{RAY_AUTH_TOKEN:-}}\"; }} > {tmp_path}/ray-called\n")
    ray.chmod(0o755)
    return bin_dir


def test_nightly_script_gives_the_token_to_the_process_that_submits(tmp_path):
    """operations.md: without RAY_AUTH_MODE=token, `ray job submit` to a 2.60 cluster fails with "Missing
    authentication token". The script sets it and checks that a token is there before submitting."""
    script = os.path.join(ROOT, "scripts", "nightly.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PATH=f"{fake_ray(tmp_path)}:{env['PATH']}", HOME=str(tmp_path), RAY_ADDRESS="http://127.0.0.1:8265",
               INPUT_PREFIX="s3://b/docs", OUTPUT_PREFIX="s3://b/out", EXTRA_ARGS="--max-actors 8")
    res = subprocess.run(["bash", script, "2026-11-20"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "no token" in res.stderr and not (tmp_path / "ray-called").exists()

    res = subprocess.run(["bash", script, "2026-11-20"], capture_output=True, text=True,
                         env={**env, "RAY_AUTH_TOKEN": "s3cr3t-token"})
    assert res.returncode == 0, res.stderr
    called = (tmp_path / "ray-called").read_text().splitlines()
    assert called[1:] == ["mode: token", "token: s3cr3t-token"]
    assert called[0].startswith("args: job submit --address http://127.0.0.1:8265 --submission-id nightly-2026-11-20-")
    assert called[0].endswith("-- python jobs/translate_corpus.py --input s3://b/docs/date=2026-11-20/ --output "
                              "s3://b/out/date=2026-11-20/ --max-actors 8")
    assert "s3cr3t" not in res.stdout + res.stderr and "token from RAY_AUTH_TOKEN" in res.stdout

    (tmp_path / "ray-called").unlink()
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-file")
    res = subprocess.run(["bash", script, "2026-11-20"], capture_output=True, text=True,
                         env={**env, "DRY_RUN": "1"})
    assert res.returncode == 0 and not (tmp_path / "ray-called").exists()
    assert "RAY_AUTH_MODE=token, token from " + str(tmp_path / ".ray" / "auth_token") in res.stdout
    assert "dry run: ray job submit --address http://127.0.0.1:8265" in res.stdout


def test_ray_data_actors_get_their_small_constructor_arguments_inline():
    """ray#53727: Ray logs an error for every actor with restarts whose constructor arguments are in the object
    store, and Ray Data 2.60 passes each actor its UDF and DataContext as `ray.put` references. Small ones
    now travel by value, inside the actor's creation task, which Ray keeps for restarts."""
    from ray.data import DataContext
    from ray.data._internal.execution.operators.actor_pool_map_operator import ActorPoolMapOperator

    from pipeline.cluster import inline_actor_arguments

    inline_actor_arguments()
    inline_actor_arguments()  # idempotent
    op = ActorPoolMapOperator.__new__(ActorPoolMapOperator)
    op._map_transformer, op._data_context = ("a small UDF",), DataContext.get_current()
    assert op._map_transformer_ref == ("a small UDF",) and op._data_context_ref is op.data_context
