"""Checks for deploy/Dockerfile and deploy/compose.yaml (neither can be built or run here: no Docker).

Each check returns the problems it finds ([] = fine), like those in deploy_checks.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deploy_checks import (
    GATEWAY_PORT,
    IMAGE_EXTRAS,
    LIVENESS_PATH,
    ROOT,
    WORKER_PORT,
    declared_extras,
    option,
    parse_duration,
    tested_python,
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m[1] or m[2], m[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and instruction == "ARG":
            key, _, default = args.partition("=")
            global_args[key] = default
        elif stages:
            stages[-1].instructions.append((instruction, args))
    return global_args, stages


def _arg_default(stage: Stage, name: str) -> str | None:
    for args in stage.all("ARG"):
        key, _, default = args.partition("=")
        if key == name:
            return default
    return None


def _ignored_sources(ignore_text: str) -> tuple[bool, list[str]]:
    """(everything ignored first?, the paths let back in with ``!``) of a .dockerignore."""
    patterns = [p.strip() for p in ignore_text.splitlines() if p.strip() and not p.startswith("#")]
    return patterns[:1] == ["**"], [p[1:].rstrip("/") for p in patterns if p.startswith("!")]


def dockerfile_problems(text: str, ignore_text: str) -> list[str]:
    problems = []
    _, stages = parse_dockerfile(text)
    if not stages:
        return ["no FROM"]
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in names:
            continue
        image, _, tag = stage.base.rpartition(":")
        if not image or "/" in tag or tag == "latest" or "$" in stage.base:
            problems.append(f"base {stage.base!r} is not pinned to a release tag")
    pythons = [s.base for s in stages if s.base.startswith("python:")]
    if not pythons or any(not p.startswith(f"python:{tested_python()}.") for p in pythons):
        problems.append(f"Python bases {pythons} are not the Python we test on ({tested_python()})")
    final = stages[-1]
    users = final.all("USER")
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as {users[-1] if users else 'root'}, not a non-root USER")
    healthchecks = final.all("HEALTHCHECK")
    if not healthchecks or "NONE" in healthchecks[-1].upper().split():
        problems.append("the final stage has no HEALTHCHECK")
    else:
        script = ROOT / "deploy" / "healthcheck.py"
        if (
            "healthcheck.py" not in healthchecks[-1]
            or f":{WORKER_PORT}{LIVENESS_PATH}" not in script.read_text()
        ):
            problems.append(f"the HEALTHCHECK does not ask :{WORKER_PORT}{LIVENESS_PATH}")
    exposed = {word.split("/")[0] for args in final.all("EXPOSE") for word in args.split()}
    if not {str(WORKER_PORT), str(GATEWAY_PORT)} <= exposed:
        problems.append(f"EXPOSE {sorted(exposed)} lacks {WORKER_PORT} or {GATEWAY_PORT}")
    if not any("voxloop" in e for e in final.all("ENTRYPOINT")):
        problems.append("the ENTRYPOINT is not voxloop")
    site_paths = set(re.findall(r"lib/python(\d+\.\d+)/", text))
    if site_paths - {tested_python()}:
        problems.append(f"paths into lib/python{sorted(site_paths)} do not match Python {tested_python()}")
    problems += _extras_problems(stages)
    problems += _web_stage_problems(stages)
    problems += _context_problems(stages, ignore_text)
    return problems


def _extras_problems(stages: list[Stage]) -> list[str]:
    installs = [(s, r) for s in stages for r in s.all("RUN") if "pip install" in r]
    extras: set[str] = set()
    for stage, run in installs:
        match = re.search(r"\[([^\]]+)\]", run)
        if match:
            spec = match[1]
            if spec.startswith("${"):
                spec = _arg_default(stage, spec[2:-1]) or ""
            extras |= {e.strip() for e in spec.split(",")}
    problems = []
    if not extras >= IMAGE_EXTRAS:
        problems.append(f"the image installs extras {sorted(extras)}, not all of {sorted(IMAGE_EXTRAS)}")
    if unknown := extras - declared_extras():
        problems.append(f"extras {sorted(unknown)} are not declared in pyproject.toml")
    return problems


def _web_stage_problems(stages: list[Stage]) -> list[str]:
    web = [s for s in stages if s.base.startswith("node:")]
    if not web or not web[0].name:
        return ["no named node stage builds the web page"]
    runs = " && ".join(web[0].all("RUN"))
    problems = [] if "npm ci" in runs and "npm run" in runs else ["the node stage does not npm ci and build"]
    copies = [c for s in stages for c in s.all("COPY") if f"--from={web[0].name}" in c]
    if not any("voxloop/server/static" in c for c in copies):
        problems.append("the built page (src/voxloop/server/static) is not copied from the node stage")
    return problems


def _context_problems(stages: list[Stage], ignore_text: str) -> list[str]:
    """Every file COPY takes from the build context is let through the Dockerfile's .dockerignore."""
    ignores_all, allowed = _ignored_sources(ignore_text)
    if not ignores_all:
        return ["Dockerfile.dockerignore does not start from `**` (the whole repository would be sent)"]
    problems = []
    for stage in stages:
        for args in stage.all("COPY"):
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                source = source.rstrip("/") if source not in ("./", ".") else ""
                if not any(source == a or source.startswith(a + "/") for a in allowed):
                    problems.append(f"COPY {source!r} is excluded by Dockerfile.dockerignore")
    return problems


# -- compose ---------------------------------------------------------------------------------------


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _port_of(url: str) -> int | None:
    return urlsplit(url).port


def compose_problems(compose: dict[str, Any], compose_dir: Path) -> list[str]:
    """Redis, two workers and a gateway; healthchecks; start order; grace periods over the drain."""
    problems = []
    services: dict[str, dict[str, Any]] = compose.get("services", {})
    redis = [n for n, s in services.items() if str(s.get("image", "")).startswith(("redis:", "valkey/"))]
    workers = [n for n, s in services.items() if _command(s)[:1] == ["run"]]
    gateways = [n for n, s in services.items() if _command(s)[:1] == ["gateway"]]
    if len(redis) != 1 or len(workers) != 2 or len(gateways) < 1:
        return [f"expected Redis + 2 workers + a gateway, found {redis}, {workers}, {gateways}"]
    redis_port = int(option(_command(services[redis[0]]), "--port") or 6379)
    for name, service in services.items():
        if not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name}: no healthcheck")
        if ":latest" in str(service.get("image", "")):
            problems.append(f"{name}: image tagged latest")
    ports = set()
    for name in workers + gateways:
        service = services[name]
        command, env = _command(service), service.get("environment", {})
        if not isinstance(env, dict):
            problems.append(f"{name}: environment must be a mapping")
            continue
        depends = service.get("depends_on", {})
        if not isinstance(depends, dict) or depends.get(redis[0], {}).get("condition") != "service_healthy":
            problems.append(f"{name}: does not wait for {redis[0]} to be healthy (depends_on)")
        cluster = option(command, "--cluster") or env.get("VOXLOOP_CLUSTER_URL", "")
        if urlsplit(cluster).scheme != "redis" or (_port_of(cluster) or 6379) != redis_port:
            problems.append(f"{name}: cluster URL {cluster!r} is not {redis[0]} on port {redis_port}")
        port = int(option(command, "--port") or (WORKER_PORT if name in workers else GATEWAY_PORT))
        if port in ports:
            problems.append(f"{name}: port {port} is used twice")
        ports.add(port)
        test = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
        if f":{port}{LIVENESS_PATH}" not in test:
            problems.append(f"{name}: the healthcheck does not ask its own :{port}{LIVENESS_PATH}")
        build = service.get("build", {})
        if (
            build
            and not (
                compose_dir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            ).is_file()
        ):
            problems.append(f"{name}: build {build} names no Dockerfile")
        if name not in workers:
            continue
        advertise = option(command, "--advertise-url") or env.get("VOXLOOP_ADVERTISE_URL", "")
        if _port_of(advertise) != port:
            problems.append(f"{name}: advertises {advertise!r}, but listens on {port}")
        explicit = option(command, "--drain-timeout")
        if explicit is None or "VOXLOOP_DRAIN_TIMEOUT" in env:
            problems.append(f"{name}: the drain timeout is not given once, as --drain-timeout")
        drain = float(explicit or env.get("VOXLOOP_DRAIN_TIMEOUT", 30))
        grace = parse_duration(service.get("stop_grace_period", "10s"))
        if not grace > drain:
            problems.append(f"{name}: stop_grace_period {grace:g}s is not over the drain timeout {drain:g}s")
    return problems
