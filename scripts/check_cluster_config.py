"""Check Ray cluster-launcher configs before `ray up`: schema, exposed ports, credentials.

    python scripts/check_cluster_config.py cluster.yaml deploy/gcp-cluster.yaml

Exits non-zero with one line per problem. Used by tests/unit/test_cluster_config.py.
"""

from __future__ import annotations

import json
import os
import re
import sys

import yaml

# Ray dashboard / Jobs API, Ray client server, GCS: remote code execution if reachable (CVE-2023-48022).
RAY_PORTS = (8265, 10001, 6379)
WORLD = ("0.0.0.0/0", "::/0")
SECRET_PATTERNS = [
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"(?i)aws_secret_access_key|secret_access_key|SecretAccessKey"), "an AWS secret key field"),
    (re.compile(r"(?i)(password|passwd|api[_-]?key|private[_-]?key)\s*[:=]\s*\S+"), "a password or key"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"(?i)RAY_AUTH_TOKEN\s*=\s*[0-9a-f]{16,}"), "a Ray auth token"),
]


def schema_errors(config: dict) -> list[str]:
    import jsonschema
    import ray.autoscaler

    path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    with open(path) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    return [f"schema: {'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
            for e in validator.iter_errors(config)]


def _covers(rule: dict, port: int) -> bool:
    if str(rule.get("IpProtocol")) == "-1":
        return True
    lo, hi = rule.get("FromPort", -1), rule.get("ToPort", -1)
    return lo == -1 or lo <= port <= hi


def exposed_ingress(config: dict) -> list[str]:
    """Ingress rules that open a Ray port (or every port) to the whole internet."""
    problems = []
    rules = config.get("provider", {}).get("security_group", {}).get("IpPermissions", []) or []
    for rule in rules:
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
        cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        if not any(c in WORLD for c in cidrs):
            continue
        if str(rule.get("IpProtocol")) == "-1" or (rule.get("FromPort"), rule.get("ToPort")) in ((0, 65535), (-1, -1)):
            problems.append(f"ingress: all ports open to {cidrs}")
        for port in RAY_PORTS:
            if _covers(rule, port):
                problems.append(f"ingress: port {port} open to {cidrs}")
    return problems


def start_command_problems(config: dict) -> list[str]:
    problems = []
    head = " ".join(config.get("head_start_ray_commands", []))
    if "--dashboard-host=0.0.0.0" in head:
        problems.append("head: the dashboard listens on 0.0.0.0; bind it to 127.0.0.1 and port-forward")
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        cmds = " ".join(config.get(key, []))
        if "ray start" in cmds and "RAY_AUTH_MODE=token" not in cmds:
            problems.append(f"{key}: ray start without RAY_AUTH_MODE=token")
    return problems


def unnamed_resources(config: dict) -> list[str]:
    """Worker node types that do not name their resources. The launcher detects them when a node starts,
    but the translation job reads the node types before any worker is up to know that GPU nodes can
    come (pipeline/cluster.py): with `resources: {}` it sees none and runs CPU actors."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    return [f"node type {name}: name its resources (e.g. {{CPU: 4, GPU: 1}}); the translation job cannot see "
            "what an empty entry provides" for name, t in types.items()
            if name != head and isinstance(t, dict) and t.get("max_workers", 0) and not t.get("resources")]


def credential_findings(text: str) -> list[str]:
    return [f"credentials: {what} in the file" for pattern, what in SECRET_PATTERNS if pattern.search(text)]


def check(path: str) -> list[str]:
    with open(path) as f:
        text = f.read()
    config = yaml.safe_load(text)
    return (schema_errors(config) + exposed_ingress(config) + start_command_problems(config)
            + unnamed_resources(config) + credential_findings(text))


def main(argv: list[str]) -> int:
    bad = 0
    for path in argv:
        for problem in check(path):
            print(f"{path}: {problem}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["cluster.yaml"]))
