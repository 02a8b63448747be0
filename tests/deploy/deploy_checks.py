"""Consistency checks for the files under deploy/: each returns the problems it finds ([] = fine).

They hold the deployment files to the interface of ``voxloop run`` and ``voxloop gateway`` (ports,
probe paths, the drain on SIGTERM, the sessions gauge) and to each other (selectors, targets, grace
periods). tests/deploy/test_manifests.py runs them on the files, and on broken copies to show that
each can fail.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

WORKER_PORT = 7860
GATEWAY_PORT = 7870
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
SESSIONS_METRIC = "voxloop_sessions_live"
#: What the default bot needs inside the image (its models come from these extras; telemetry: /metrics).
IMAGE_EXTRAS = {"local", "piper", "espeak", "webrtc", "telemetry", "cluster"}

Doc = dict[str, Any]


# -- small parsers ---------------------------------------------------------------------------------


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in a command line, else None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def parse_duration(text: str) -> float:
    """Compose durations: ``40s``, ``1m30s``, ``1h``, ``500ms``."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(text).strip())
    if not parts or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r}")
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3}


def parse_quantity(value: object) -> float:
    """A Kubernetes quantity (``"2"``, ``500m``, ``1536Mi``) as a number; ValueError if it is not one."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G|m|)", str(value))
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def declared_extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def tested_python() -> str:
    """The Python we test on and type-check for (pyproject's mypy ``python_version``)."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["python_version"])


# -- Kubernetes ------------------------------------------------------------------------------------


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d.get("kind") == kind and d.get("metadata", {}).get("name") == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} {kind} named {name!r}")
    return matches[0]


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """Whether a ``matchLabels`` / Service selector picks pods labelled ``labels``."""
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def pod_spec(deployment: Doc) -> Doc:
    """The pod template's spec itself (not a copy: tests break manifests through it)."""
    spec: Doc = deployment["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: Doc) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"].get("labels", {})
    return labels


def container_port(container: Doc, port: int | str) -> int | None:
    """A probe's ``port`` (a number or a named container port) as a number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def env_value(container: Doc, name: str) -> str | None:
    for var in container.get("env", []):
        if var.get("name") == name:
            return var.get("value")
    return None


def prestop_secs(container: Doc) -> float | None:
    """How long the preStop hook holds SIGTERM back: a ``sleep`` action or an ``exec`` of sleep N."""
    hook = container.get("lifecycle", {}).get("preStop")
    if not hook:
        return None
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    words = shlex.split(command[-1]) if command[:2] in (["sh", "-c"], ["/bin/sh", "-c"]) else command
    if len(words) == 2 and words[0] in ("sleep", "/bin/sleep"):
        return float(words[1])
    return None


def _probe_problems(container: Doc, probe_name: str, path: str, port: int) -> list[str]:
    probe = container.get(probe_name)
    if not probe:
        return [f"{container['name']}: no {probe_name}"]
    get = probe.get("httpGet", {})
    problems = []
    if get.get("path") != path:
        problems.append(f"{container['name']}: {probe_name} path {get.get('path')!r}, not {path!r}")
    if container_port(container, get.get("port", "")) != port:
        problems.append(f"{container['name']}: {probe_name} port {get.get('port')!r} is not {port}")
    return problems


def _common_pod_problems(deployment: Doc) -> list[str]:
    """What every Deployment of ours needs: matching selector, pinned image, non-root, requests."""
    problems = []
    name = deployment["metadata"]["name"]
    if not selects(deployment["spec"]["selector"].get("matchLabels"), pod_labels(deployment)):
        problems.append(f"{name}: the selector does not match the pod template's labels")
    spec = pod_spec(deployment)
    security = spec.get("securityContext", {})
    if security.get("runAsNonRoot") is not True or security.get("runAsUser", 0) == 0:
        problems.append(f"{name}: pods must run as a non-root user (runAsNonRoot, runAsUser)")
    for container in spec["containers"]:
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{name}: image {image!r} is not pinned to a tag")
        resources = container.get("resources", {})
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        for key in ("cpu", "memory"):
            try:
                parse_quantity(requests[key])
            except (KeyError, ValueError) as exc:
                problems.append(f"{name}: resources.requests.{key}: {exc}")
        try:
            if "memory" in limits and parse_quantity(limits["memory"]) < parse_quantity(requests["memory"]):
                problems.append(f"{name}: the memory limit is below the request")
        except (KeyError, ValueError) as exc:
            problems.append(f"{name}: resources.limits.memory: {exc}")
    return problems


def worker_problems(deployment: Doc) -> list[str]:
    """The worker Deployment against ``voxloop run``'s interface and its drain."""
    problems = _common_pod_problems(deployment)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    args = container.get("args", [])
    if (
        args[:1] != ["run"]
        or option(args, "--port") != str(WORKER_PORT)
        or option(args, "--host") != "0.0.0.0"
    ):
        problems.append(f"worker: args {args} are not `run --host 0.0.0.0 --port {WORKER_PORT}`")
    if option(args, "--max-sessions") is None:
        problems.append("worker: no --max-sessions (the HPA target is a share of it)")
    problems += _probe_problems(container, "livenessProbe", LIVENESS_PATH, WORKER_PORT)
    problems += _probe_problems(container, "readinessProbe", READINESS_PATH, WORKER_PORT)
    if "startupProbe" in container:
        problems += _probe_problems(container, "startupProbe", LIVENESS_PATH, WORKER_PORT)
    # Explicit in the args: `voxloop run`'s own default (30 s) is not what the grace period covers.
    drain = option(args, "--drain-timeout")
    prestop = prestop_secs(container)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if drain is None:
        problems.append("worker: no --drain-timeout in its args")
    if env_value(container, "VOXLOOP_DRAIN_TIMEOUT") is not None:
        problems.append("worker: VOXLOOP_DRAIN_TIMEOUT as well as --drain-timeout (one place only)")
    if prestop is None:
        problems.append("worker: no preStop hook of a known length")
    if drain is not None and prestop is not None and not grace > float(drain) + prestop:
        problems.append(f"worker: terminationGracePeriodSeconds {grace} <= drain {drain} + preStop {prestop}")
    advertise = option(args, "--advertise-url") or env_value(container, "VOXLOOP_ADVERTISE_URL") or ""
    problems += _advertise_problems(container, advertise)
    return problems


def _advertise_problems(container: Doc, advertise: str) -> list[str]:
    """The advertised URL is this pod's (or node's) address and port, from variables defined before it."""
    match = re.fullmatch(r"https?://\$\((\w+)\):(\d+)", advertise)
    if not match:
        return [f"worker: advertise URL {advertise!r} is not http://$(POD_IP or HOST_IP):PORT"]
    problems = []
    if int(match[2]) != WORKER_PORT:
        problems.append(f"worker: the advertise URL's port {match[2]} is not {WORKER_PORT}")
    names = [v.get("name") for v in container.get("env", [])]
    source = next((v for v in container.get("env", []) if v.get("name") == match[1]), None)
    field = (source or {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if field not in ("status.podIP", "status.hostIP"):
        problems.append(f"worker: $({match[1]}) is not the pod's or the node's IP (fieldRef)")
    elif names.index(match[1]) > names.index("VOXLOOP_ADVERTISE_URL"):
        problems.append(f"worker: $({match[1]}) is defined after VOXLOOP_ADVERTISE_URL (not expanded)")
    return problems


def gateway_problems(deployment: Doc) -> list[str]:
    problems = _common_pod_problems(deployment)
    (container,) = pod_spec(deployment)["containers"]
    args = container.get("args", [])
    if args[:1] != ["gateway"] or option(args, "--port") != str(GATEWAY_PORT):
        problems.append(f"gateway: args {args} are not `gateway --port {GATEWAY_PORT}`")
    problems += _probe_problems(container, "livenessProbe", LIVENESS_PATH, GATEWAY_PORT)
    problems += _probe_problems(container, "readinessProbe", LIVENESS_PATH, GATEWAY_PORT)
    if deployment["spec"].get("replicas", 1) < 2:
        problems.append("gateway: fewer than 2 replicas (one gateway is a single point of failure)")
    return problems


def cluster_url_problems(deployment: Doc, docs: list[Doc]) -> list[str]:
    """VOXLOOP_CLUSTER_URL comes from the env or a Secret in the manifests, and names the Redis Service."""
    (container,) = pod_spec(deployment)["containers"]
    url = env_value(container, "VOXLOOP_CLUSTER_URL")
    for source in container.get("envFrom", []):
        if "secretRef" in source and not source["secretRef"].get("optional"):  # an optional one is the user's
            secret = find(docs, "Secret", source["secretRef"]["name"])
            url = url or secret.get("stringData", {}).get("VOXLOOP_CLUSTER_URL")
    name = deployment["metadata"]["name"]
    if url is None:
        return [f"{name}: no VOXLOOP_CLUSTER_URL"]
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return [f"{name}: VOXLOOP_CLUSTER_URL {url!r} is not a redis:// URL"]
    try:
        service = find(docs, "Service", parts.hostname or "")
    except LookupError:
        return [f"{name}: no Service {parts.hostname!r} for VOXLOOP_CLUSTER_URL {url!r}"]
    if (parts.port or 6379) not in [p["port"] for p in service["spec"]["ports"]]:
        return [f"{name}: Service {parts.hostname!r} does not serve port {parts.port or 6379}"]
    return []


def ice_problems(worker: Doc, gateway: Doc) -> list[str]:
    """Workers (aiortc) and gateways (the /start reply) must read the same ICE servers."""

    def sources(deployment: Doc) -> list[Doc]:
        (container,) = pod_spec(deployment)["containers"]
        env = [v for v in container.get("env", []) if v.get("name", "").startswith("VOXLOOP_ICE_")]
        return env + [s for s in container.get("envFrom", []) if "voxloop-ice" in str(s)]

    if sources(worker) != sources(gateway):
        return ["the worker and the gateway do not read the same ICE servers (VOXLOOP_ICE_*)"]
    return []


def service_problems(service: Doc, target: Doc, others: list[Doc], port: int) -> list[str]:
    """``service`` selects ``target``'s pods only and forwards to ``port`` on them."""
    problems = []
    selector = service["spec"].get("selector")
    if not selects(selector, pod_labels(target)):
        problems.append(f"Service {service['metadata']['name']} does not select {target['metadata']['name']}")
    for other in others:
        if selects(selector, pod_labels(other)):
            problems.append(f"Service {service['metadata']['name']} also selects {other['metadata']['name']}")
    (container,) = pod_spec(target)["containers"]
    for p in service["spec"]["ports"]:
        if container_port(container, p.get("targetPort", p["port"])) != port:
            problems.append(f"Service {service['metadata']['name']}: targetPort {p.get('targetPort')!r}")
    return problems


def pdb_problems(pdb: Doc, target: Doc, others: list[Doc]) -> list[str]:
    problems = []
    selector = pdb["spec"]["selector"].get("matchLabels")
    if not selects(selector, pod_labels(target)):
        problems.append(f"PDB {pdb['metadata']['name']} does not select {target['metadata']['name']}'s pods")
    for other in others:
        if selects(selector, pod_labels(other)):
            problems.append(f"PDB {pdb['metadata']['name']} also selects {other['metadata']['name']}'s pods")
    if "maxUnavailable" not in pdb["spec"] and "minAvailable" not in pdb["spec"]:
        problems.append(f"PDB {pdb['metadata']['name']} sets neither maxUnavailable nor minAvailable")
    return problems


def hpa_problems(hpa: Doc, worker: Doc, pdb: Doc) -> list[str]:
    problems = []
    spec = hpa["spec"]
    ref = spec["scaleTargetRef"]
    if (ref.get("apiVersion"), ref["kind"], ref["name"]) != (
        "apps/v1",
        "Deployment",
        worker["metadata"]["name"],
    ):
        problems.append(f"HPA targets {ref}, not the worker Deployment")
    metrics = [m for m in spec.get("metrics", []) if m["type"] == "Pods"]
    names = [m["pods"]["metric"]["name"] for m in metrics]
    if names != [SESSIONS_METRIC]:
        problems.append(f"HPA scales on pods metrics {names}, not [{SESSIONS_METRIC!r}]")
    (container,) = pod_spec(worker)["containers"]
    capacity = float(option(container.get("args", []), "--max-sessions") or 50)
    for metric in metrics:
        target = metric["pods"]["target"]
        value = parse_quantity(target.get("averageValue", "0"))
        if target["type"] != "AverageValue" or not 0 < value < capacity:
            problems.append(f"HPA target {target} is not an average below --max-sessions {capacity:g}")
    if spec.get("minReplicas", 1) < 2:
        problems.append("HPA minReplicas below 2: one worker is a single point of failure")
    if pdb["spec"].get("maxUnavailable", 1) >= spec.get("minReplicas", 1):
        problems.append("the worker PDB lets every worker go at once")
    if "replicas" in worker["spec"]:
        problems.append("the worker Deployment sets replicas (the HPA owns it; apply would reset it)")
    return problems


def hostnetwork_problems(base: Doc, variant: Doc) -> list[str]:
    """The host-network worker is the base worker plus exactly its documented changes."""
    import copy

    expected = copy.deepcopy(base)
    spec = expected["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    (container,) = spec["containers"]
    for var in container["env"]:
        if var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            var["name"], var["valueFrom"]["fieldRef"]["fieldPath"] = "HOST_IP", "status.hostIP"
        if var["name"] == "VOXLOOP_ADVERTISE_URL":
            var["value"] = var["value"].replace("$(POD_IP)", "$(HOST_IP)")
    for port in container["ports"]:
        port["hostPort"] = port["containerPort"]
    if variant == expected:
        return []
    return [
        "deploy/k8s/hostnetwork/worker.yaml differs from worker.yaml beyond hostNetwork, dnsPolicy, HOST_IP"
    ]
