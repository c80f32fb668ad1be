#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests (`kubectl kustomize` output) against
the project itself, not only against the schemas:

static, from the manifests, the binaries' --help, the Dockerfile,
docker-compose.yml and .github/workflows/images.yml:
  - an Ingress routes no internal path (/metrics, a probe's or the
    Prometheus annotation's path) of the Service's pods;
  - every container: runAsNonRoot, readOnlyRootFilesystem, drop ALL, no
    privilege escalation, seccomp RuntimeDefault; cpu and memory requests and
    limits; Deployments and StatefulSets have liveness and readiness probes
    on ports the containers have, the services' HTTP GETs on the port the
    binary listens on (what the paths answer is checked at run time);
  - each service container's env names are settings its binary accepts (or
    helpers that a later $(NAME) uses), its --flags are flags it has, every
    ConfigMap, Secret and key it reads exists; a `*_FILE` setting names a
    file a Secret or ConfigMap volume mounts into that container; the db's
    init scripts are the project's (db/);
  - images: voting-<x> is the compose service x built from the Dockerfile
    target whose entrypoint is the binary x, the one images.yml builds;
    redis and db run the images compose runs;
  - Services select pods and reach a port they have; every URL in a setting
    names a Service and port; the NetworkPolicies allow exactly the
    connections those URLs need between the pods, and DNS.

at run time (unless --static), the binaries started with each container's
environment as Kubernetes would expand it, hosts and ports mapped to local
throwaway servers (redis-server with the StatefulSet's args, through its
start script and ACL users; Postgres set up as the postgres image would
from the db StatefulSet's env and its init scripts, password auth on), and
the ConfigMaps, Secrets and emptyDirs each container mounts written to
local directories that the paths in its args and env are mapped to:
  - with Redis and Postgres down, liveness answers within its budget and
    readiness does not; once they are up, each init container (`worker
    migrate`) exits 0 and readiness answers;
  - the Prometheus annotations' metrics paths answer;
  - the seed Job's command (or, without one, 300 ballots) runs through the
    stack and its --verify sees every ballot counted;
  - SIGTERM stops each service with status 0 within its grace period.

  crosscheck.py --bin-dir DIR [--static] RENDERED.yaml...
  crosscheck.py --bin-dir DIR --selftest RENDERED.yaml
    (applies known mistakes to the manifests; each must be caught)
"""

import argparse
import base64
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Read by tracing's EnvFilter in every service, so not among the clap flags.
ENV_OUTSIDE_CLAP = {"RUST_LOG"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
DEFAULT_PORTS = {"redis": 6379, "postgres": 5432, "postgresql": 5432, "http": 80, "ws": 80}


# ------------------------------------------------------------ the project


class Binary:
    """A service binary and what its --help says it accepts."""

    def __init__(self, bin_dir, name):
        self.name = name
        self.path = Path(bin_dir) / name
        if not self.path.is_file():
            raise SystemExit(f"crosscheck: {self.path} missing: cargo build -p {name}")
        text = subprocess.run(
            [str(self.path), "--help"], capture_output=True, text=True, check=True
        ).stdout
        self.envs = set(re.findall(r"\[env: ([A-Z0-9_]+)=", text))
        self.flags = set(re.findall(r"(?m)^\s+(?:-\w, )?--([a-z0-9-]+)", text))
        self.port_default = None
        blocks = re.split(r"(?m)^(?=\s+(?:-\w, )?--[a-z])", text)
        for block in blocks:
            if re.match(r"\s+--port\b", block):
                found = re.search(r"\[default: (\d+)\]", block)
                self.port_default = int(found.group(1)) if found else None


class Stage:
    def __init__(self, base, name):
        self.base, self.name = base, name
        self.entrypoint = self.user = None
        self.env, self.expose = {}, []


def dockerfile_stages(path):
    """The stages of a Dockerfile by name (and index), each with its own
    ENTRYPOINT, ENV, EXPOSE and USER, and inherited from a stage it is FROM."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            continue
        elif word == "ENTRYPOINT":
            stages[-1].entrypoint = json.loads(rest) if rest.startswith("[") else rest.split()
        elif word == "USER":
            stages[-1].user = rest
        elif word == "EXPOSE":
            stages[-1].expose += [int(p.split("/")[0]) for p in rest.split()]
        elif word == "ENV":
            pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', rest)
            if not pairs:
                key, _, value = rest.partition(" ")
                pairs = [(key, value.strip())]
            stages[-1].env.update({k: v.strip('"') for k, v in pairs})
    by_name = {s.name: s for s in stages if s.name}
    for stage in stages:  # inherit from the stage this one is built FROM
        parent = by_name.get(stage.base)
        while parent:
            stage.entrypoint = stage.entrypoint or parent.entrypoint
            stage.user = stage.user or parent.user
            stage.env = {**parent.env, **stage.env}
            stage.expose = stage.expose or parent.expose
            parent = by_name.get(parent.base)
    return stages, by_name


def load_compose():
    """docker-compose.yml's services: image and (Dockerfile, target) of each."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = {}
    for name, service in compose["services"].items():
        build = service.get("build")
        entry = {"image": service.get("image"), "build": None}
        if build is not None:
            if isinstance(build, str):
                build = {"context": build}
            context = ROOT / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            entry["build"] = {
                "context": os.path.relpath(context, ROOT),
                "dockerfile": os.path.relpath(dockerfile, ROOT),
                "target": build.get("target"),
            }
        services[name] = entry
    return services


def image_name(image):
    """registry/owner/name:tag -> name (no tag, no digest, no path)."""
    image = image.split("@")[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":")[0]


def image_without_registry(image):
    image = image.split("@")[0]
    parts = image.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts[0] == "library" and len(parts) > 1:
        parts = parts[1:]
    name = "/".join(parts)
    return name if ":" in parts[-1] else name + ":latest"


class Project:
    """What the manifests are checked against."""

    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        self.compose = load_compose()
        self.binaries = {}
        self.notes, self.problems = [], []
        self.images = {}  # voting-<x> -> {"binary", "stage", "service"}
        metadata = json.loads(
            subprocess.run(
                ["cargo", "metadata", "--format-version", "1", "--no-deps"],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout
        )
        workspace_binaries = {
            t["name"] for p in metadata["packages"] for t in p["targets"] if "bin" in t["kind"]
        }
        # The service images: compose services built to run a workspace binary
        # (not images of other software compose may build).
        for service, entry in self.compose.items():
            build = entry["build"]
            if not build:
                continue
            if not (ROOT / build["dockerfile"]).is_file():
                self.problems.append(f"docker-compose.yml: service {service} builds from {build['dockerfile']}, which does not exist")
                continue
            stages, by_name = dockerfile_stages(ROOT / build["dockerfile"])
            if build["target"] and build["target"] not in by_name:
                self.problems.append(f"docker-compose.yml: service {service} builds target {build['target']}, no stage of {build['dockerfile']}")
                continue
            stage = by_name[build["target"]] if build["target"] else stages[-1]
            binary = (stage.entrypoint or [None])[0]
            if binary not in workspace_binaries:
                continue
            # Another service run from a service's image (`migrate`: the
            # worker's image, `worker migrate`): the same build, not an image.
            twin = next((other for other, e in self.compose.items()
                         if other != service and e["build"] == build and entry["image"]
                         and e["image"] == entry["image"] and image_name(e["image"]) == f"voting-{other}"), None)
            if twin:
                continue
            self.images[f"voting-{service}"] = {"binary": binary, "stage": stage, "service": service}
            if entry["image"] and image_name(entry["image"]) != f"voting-{service}":
                self.problems.append(
                    f"docker-compose.yml: service {service} builds image {entry['image']}; "
                    f"k8s and images.yml call it voting-{service}"
                )
            if entry["image"] is None:
                self.notes.append(
                    f"docker-compose.yml: service {service} has no image: name; "
                    f"`image: voting-{service}` would match k8s and images.yml"
                )

    def binary(self, name):
        if name not in self.binaries:
            self.binaries[name] = Binary(self.bin_dir, name)
        return self.binaries[name]


# ------------------------------------------------------------ the manifests


class Manifests:
    def __init__(self, path):
        self.path = path
        self.docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        self.load_index()

    def load_index(self):
        self.by_kind = {}
        for doc in self.docs:
            self.by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        namespaces = list(self.by_kind.get("Namespace", {}))
        self.namespace = namespaces[0] if namespaces else None

    def get(self, kind, name):
        return self.by_kind.get(kind, {}).get(name)

    def workloads(self):
        for kind in WORKLOAD_KINDS:
            for name, doc in sorted(self.by_kind.get(kind, {}).items()):
                yield kind, name, doc, doc["spec"]["template"]


def data_of(obj):
    """A ConfigMap's or Secret's values as strings."""
    values = dict(obj.get("stringData") or {})
    if obj["kind"] == "Secret":
        for key, value in (obj.get("data") or {}).items():
            values[key] = base64.b64decode(value).decode()
    else:
        values.update(obj.get("data") or {})
    return values


def expand(value, defined):
    """Kubernetes' $(NAME) expansion: from names defined earlier, $$ escapes;
    returns the value and the names it could not expand."""
    missing = []

    def one(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name in defined:
            return defined[name]
        missing.append(name)
        return match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value), missing


def container_env(m, container, problems, where):
    """[(name, value)] in the order Kubernetes defines them, expanded."""
    env, defined = [], {}
    for source in container.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                obj = m.get(kind, source[key]["name"])
                if obj is None:
                    problems.append(f"{where}: envFrom {kind} {source[key]['name']} does not exist")
                    continue
                for name, value in data_of(obj).items():
                    env.append((source.get("prefix", "") + name, value, None))
                    defined[source.get("prefix", "") + name] = value
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            raw = str(entry["value"])
            value, missing = expand(raw, defined)
            for unknown in missing:
                problems.append(f"{where}: {name} uses $({unknown}), defined by no entry before it")
        elif "valueFrom" in entry:
            ref = entry["valueFrom"]
            raw, value = None, None
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in ref:
                    obj = m.get(kind, ref[key]["name"])
                    if obj is None or ref[key]["key"] not in data_of(obj):
                        problems.append(
                            f"{where}: {name} reads {kind} {ref[key]['name']} key {ref[key]['key']}, which does not exist"
                        )
                    else:
                        value = data_of(obj)[ref[key]["key"]]
            if value is None and not any(k in ref for k in ("configMapKeyRef", "secretKeyRef")):
                problems.append(f"{where}: {name} comes from {list(ref)}, which this check cannot follow")
        else:
            raw, value = None, ""
        env.append((name, value if value is not None else "", raw))
        defined[name] = value if value is not None else ""
    return env


def mounted_files(m, pod, container):
    """{path: text} of every file a Secret or ConfigMap volume mounts into
    the container (missing objects or keys are left out)."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    files = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"]) or {}
        for kind, key, name_key in (("Secret", "secret", "secretName"), ("ConfigMap", "configMap", "name")):
            if key not in volume:
                continue
            obj = m.get(kind, volume[key][name_key])
            data = data_of(obj) if obj else {}
            items = volume[key].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] in data:
                    files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = data[item["key"]]
    return files


def named_port(container, port):
    """A probe's or Service's port (number or name) as a number, or None."""
    if isinstance(port, int):
        return port if any(p["containerPort"] == port for p in container.get("ports") or []) else None
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def probe_budget(probe, default_period=10, default_failures=3):
    """Seconds a container has before a failing probe acts."""
    return probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", default_period) * probe.get(
        "failureThreshold", default_failures
    )


def routes(ingress_path, path):
    """Whether an Ingress path (Exact, Prefix, or ImplementationSpecific,
    taken as a prefix) sends requests for `path` to its backend."""
    route = ingress_path["path"]
    if ingress_path["pathType"] == "Exact":
        return path == route
    # Prefix matches whole path elements: "/" matches everything, "/api"
    # matches /api and /api/tally, not /apis.
    prefix = route.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def matches(selector, labels):
    if selector.get("matchExpressions"):
        raise ValueError("matchExpressions")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


# ------------------------------------------------------------ static checks


class Check:
    def __init__(self, project, m):
        self.project, self.m = project, m
        self.problems = []
        self.apps = {}  # workload name -> {"kind", "binary", "container", "env", "port", "pod"}
        self.inits = {}  # workload name -> [the same, for each init container]
        self.flows = set()  # (from workload, to workload, port, why)

    def fail(self, text):
        self.problems.append(text)

    def run(self):
        self.problems += self.project.problems
        for kind, name, doc, pod in self.m.workloads():
            self.check_pod(kind, name, doc, pod)
        self.check_services()
        self.check_urls()
        self.check_network()
        self.check_workflow()
        return self.problems

    # -- pods and containers

    def check_pod(self, kind, name, doc, pod):
        spec = pod["spec"]
        psc = spec.get("securityContext") or {}
        inits = spec.get("initContainers", [])
        for container in spec.get("containers", []) + inits:
            init = container in inits
            where = f"{kind} {name}, {'init ' if init else ''}container {container['name']}"
            csc = container.get("securityContext") or {}
            if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                self.fail(f"{where}: runAsNonRoot is not true")
            if csc.get("runAsUser", psc.get("runAsUser")) == 0:
                self.fail(f"{where}: runs as uid 0")
            if csc.get("readOnlyRootFilesystem") is not True:
                self.fail(f"{where}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                self.fail(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                self.fail(f"{where}: capabilities do not drop ALL")
            if (csc.get("capabilities") or {}).get("add"):
                self.fail(f"{where}: adds capabilities")
            seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                self.fail(f"{where}: seccompProfile is {seccomp}, not RuntimeDefault")
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(part) or {}):
                        self.fail(f"{where}: no {resource} in resources.{part}")
            files = mounted_files(self.m, pod, container)
            for env in container.get("env") or []:
                if env["name"].endswith("_FILE") and "value" in env and env["value"] not in files:
                    self.fail(f"{where}: {env['name']} names {env['value']}, which no Secret or ConfigMap volume mounts")
            for path, text in files.items():
                if path.startswith("/docker-entrypoint-initdb.d/"):
                    ours = ROOT / "db" / path.rsplit("/", 1)[1]
                    if not ours.exists() or ours.read_text() != text:
                        self.fail(f"{where}: the init script {path} is not the project's {ours.relative_to(ROOT)}")
            if kind in ("Deployment", "StatefulSet") and not init:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in container:
                        self.fail(f"{where}: no {probe}")
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    self.check_probe_port(where, container, probe)
            self.check_image(kind, name, pod, container, where, init)

    def check_probe_port(self, where, container, probe_name):
        probe = container.get(probe_name)
        if not probe:
            return
        for handler in ("httpGet", "tcpSocket", "grpc"):
            if handler in probe and named_port(container, probe[handler]["port"]) is None:
                self.fail(f"{where}: {probe_name} port {probe[handler]['port']} is no port of the container")

    def check_image(self, kind, name, pod, container, where, init=False):
        image = container["image"]
        base = image_name(image)
        if base.startswith("voting-"):
            built = self.project.images.get(base)
            if built is None:
                self.fail(
                    f"{where}: image {image}: no compose service {base[len('voting-'):]} builds it "
                    f"(compose builds {', '.join(sorted(self.project.images))})"
                )
                return
            self.check_app(kind, name, pod, container, where, built, init)
            return
        # A store: the image compose runs for the service of the same name.
        service = self.project.compose.get(name)
        if service is None or service["image"] is None:
            self.fail(f"{where}: image {image}: compose has no service {name} with an image to compare")
        elif image_without_registry(image) != image_without_registry(service["image"]):
            self.fail(f"{where}: image {image}, but compose runs {service['image']}")

    def check_app(self, kind, name, pod, container, where, built, init=False):
        binary_name = built["binary"]
        stage = built["stage"]
        if binary_name is None:
            self.fail(f"{where}: the Dockerfile stage for {image_name(container['image'])} has no ENTRYPOINT")
            return
        binary = self.project.binary(binary_name)
        if container.get("command"):
            self.fail(f"{where}: command overrides the image's entrypoint {stage.entrypoint}")
        # The image's user, when it names one, is the one the pod runs as.
        psc = pod["spec"].get("securityContext") or {}
        uid = (container.get("securityContext") or {}).get("runAsUser", psc.get("runAsUser"))
        image_uid = (stage.user or "").split(":")[0]
        if uid is not None and image_uid.isdigit() and int(image_uid) != uid:
            self.fail(f"{where}: runAsUser {uid}, but the image runs as {stage.user}")
        env = container_env(self.m, container, self.problems, where)
        names = [n for n, _, _ in env]
        raws = [r or "" for _, _, r in env]
        for i, env_name in enumerate(names):
            if env_name in binary.envs or env_name in ENV_OUTSIDE_CLAP:
                continue
            used_later = any(f"$({env_name})" in r for r in raws[i + 1 :])
            if not used_later:
                self.fail(f"{where}: env {env_name} is no setting of {binary_name} (it takes {', '.join(sorted(binary.envs | ENV_OUTSIDE_CLAP))})")
        for arg in container.get("args") or []:
            if arg.startswith("--"):
                flag = arg[2:].split("=")[0]
                if flag not in binary.flags:
                    self.fail(f"{where}: argument {arg}: --{flag} is no flag of {binary_name}")
        if init:
            # Run before the pod's containers, to completion (`worker migrate`).
            self.inits.setdefault(name, []).append(
                {"kind": kind, "binary": binary, "container": container, "env": env, "port": None, "pod": pod}
            )
            return
        values = {n: v for n, v, _ in env}
        port = int(values.get("PORT") or stage.env.get("PORT") or binary.port_default or 0) or None
        if kind == "Deployment":
            if port is None:
                self.fail(f"{where}: cannot tell which port {binary_name} listens on")
            declared = [p["containerPort"] for p in container.get("ports") or []]
            if port is not None and port not in declared:
                self.fail(f"{where}: {binary_name} listens on {port}, not among the container ports {declared}")
            if stage.expose and port is not None and port not in stage.expose:
                self.fail(f"{where}: {binary_name} listens on {port}; the image EXPOSEs {stage.expose}")
            # Which paths: what they answer is tested at run time.
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container.get(probe_name)
                if probe is None:
                    continue
                http = probe.get("httpGet")
                if not http:
                    self.fail(f"{where}: {probe_name} is not an HTTP GET")
                    continue
                probed = named_port(container, http["port"])
                if port is not None and probed is not None and probed != port:
                    self.fail(f"{where}: {probe_name} probes port {probed}, but {binary_name} listens on {port}")
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get("prometheus.io/scrape") == "true":
                scraped = int(annotations.get("prometheus.io/port", 0) or 0)
                if scraped != port:
                    self.fail(f"{where}: prometheus.io/port {scraped}, but {binary_name} listens on {port}")
        self.apps[name] = {
            "kind": kind,
            "binary": binary,
            "container": container,
            "env": env,
            "port": port,
            "pod": pod,
        }

    # -- Services and the connections they carry

    def pods_of(self, selector):
        """The workloads whose pods a Service's selector (a label map) picks."""
        found = []
        if not selector:
            return found
        for kind, name, doc, pod in self.m.workloads():
            if matches({"matchLabels": selector}, pod["metadata"].get("labels") or {}):
                found.append((name, pod))
        return found

    def check_services(self):
        for name, service in sorted(self.m.by_kind.get("Service", {}).items()):
            selected = self.pods_of(service["spec"].get("selector") or {})
            if not selected:
                self.fail(f"Service {name}: selects no pod")
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for workload, pod in selected:
                    if not any(named_port(c, target) for c in pod["spec"]["containers"]):
                        self.fail(f"Service {name} port {port['port']}: {workload} has no port {target}")
            for port in service["spec"]["ports"]:
                if service["spec"].get("type") == "NodePort" and "nodePort" not in port:
                    self.fail(f"Service {name} port {port['port']}: NodePort without a fixed nodePort")
        for name, ingress in sorted(self.m.by_kind.get("Ingress", {}).items()):
            for rule in ingress["spec"].get("rules") or []:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    target = self.service_target(backend["name"], backend["port"].get("number") or backend["port"].get("name"))
                    if target is None:
                        self.fail(f"Ingress {name}: {path['path']} goes to {backend['name']}:{backend['port']}, no such Service port")
                        continue
                    for internal in sorted(self.internal_paths(target[0])):
                        if routes(path, internal):
                            self.fail(
                                f"Ingress {name}: {path['path']} ({path['pathType']}) routes {internal} of "
                                f"{target[0]} to the public; route only the public paths"
                            )

    def internal_paths(self, workload):
        """Paths of a workload that only the cluster may ask: /metrics (every
        service serves it), its probes' and its Prometheus annotation's."""
        pod = self.workload_pod(workload)
        paths = {"/metrics"}
        for c in pod["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                http = (c.get(probe) or {}).get("httpGet")
                if http:
                    paths.add(http.get("path", "/"))
        annotations = pod["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") == "true":
            paths.add(annotations.get("prometheus.io/path", "/metrics"))
        return paths

    def service_target(self, service_name, port):
        """(workload, container port) a Service port leads to, or None."""
        service = self.m.get("Service", service_name)
        if service is None:
            return None
        for p in service["spec"]["ports"]:
            if p["port"] == port or p.get("name") == port:
                target = p.get("targetPort", p["port"])
                for workload, pod in self.pods_of(service["spec"].get("selector") or {}):
                    for c in pod["spec"]["containers"]:
                        number = named_port(c, target)
                        if number:
                            return workload, number
        return None

    def urls_of(self, app):
        """Every URL in a setting or argument: (setting, scheme, host, port).
        Not the pages' links to each other (RESULT_PAGE_URL, VOTE_PAGE_URL):
        browsers follow those, the service never connects to them."""
        texts = [(n, v) for n, v, _ in app["env"] if not n.endswith("_PAGE_URL")]
        texts += [("args", a) for a in app["container"].get("args") or []]
        for setting, text in texts:
            for match in URL.finditer(text):
                scheme, host = match.group("scheme"), match.group("host")
                port = int(match.group("port") or DEFAULT_PORTS.get(scheme, 0))
                yield setting, scheme, host, port, match

    def service_of_host(self, host):
        parts = host.split(".")
        if len(parts) > 1 and parts[1] != self.m.namespace:
            return None
        return parts[0]

    def check_urls(self):
        every = [(n, a) for n, a in self.apps.items()] + [(n, a) for n, inits in self.inits.items() for a in inits]
        for name, app in sorted(every, key=lambda x: x[0]):
            for setting, scheme, host, port, _ in self.urls_of(app):
                service = self.service_of_host(host)
                target = self.service_target(service, port) if service else None
                if target is None:
                    self.fail(f"{name}: {setting} names {host}:{port}, which is no Service port here")
                    continue
                self.flows.add((name, target[0], target[1], setting))

    # -- NetworkPolicies

    def allowed(self, source, dest, port, protocol="TCP"):
        """Whether the policies let a pod (or "outside") reach dest:port."""
        dest_pod = self.workload_pod(dest)
        dest_labels = dest_pod["metadata"].get("labels") or {}
        ok_in = self.side(source, dest_labels, dest_pod, port, protocol, "Ingress")
        if source == "outside":
            return ok_in
        source_pod = self.workload_pod(source)
        source_labels = source_pod["metadata"].get("labels") or {}
        return ok_in and self.side(dest, source_labels, dest_pod, port, protocol, "Egress")

    def workload_pod(self, name):
        for kind, workload, doc, pod in self.m.workloads():
            if workload == name:
                return pod
        raise KeyError(name)

    def side(self, peer, own_labels, dest_pod, port, protocol, direction):
        """Ingress: own = the destination, peer = the source; Egress: own =
        the source, peer = the destination."""
        selecting = [
            p
            for p in self.m.by_kind.get("NetworkPolicy", {}).values()
            if matches(p["spec"]["podSelector"], own_labels)
            and direction in p["spec"].get("policyTypes", ["Ingress"])
        ]
        if not selecting:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        peer_labels = None if peer == "outside" else self.workload_pod(peer)["metadata"].get("labels") or {}
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                if not self.port_matches(rule.get("ports"), dest_pod, port, protocol):
                    continue
                peers = rule.get(peers_key)
                if not peers:
                    return True
                for p in peers:
                    if self.peer_matches(p, peer_labels):
                        return True
        return False

    def port_matches(self, ports, dest_pod, port, protocol):
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            want = p.get("port")
            if want is None:
                return True
            if isinstance(want, str):
                want = next((named_port(c, want) for c in dest_pod["spec"]["containers"] if named_port(c, want)), None)
            end = p.get("endPort", want)
            if want is not None and want <= port <= end:
                return True
        return False

    def peer_matches(self, peer, labels):
        if "ipBlock" in peer:
            return labels is None
        if labels is None:  # a pod in another namespace, or no pod at all
            return "namespaceSelector" in peer and not (peer["namespaceSelector"].get("matchLabels") or {})
        if "namespaceSelector" in peer:
            own = {"kubernetes.io/metadata.name": self.m.namespace}
            own.update((self.m.get("Namespace", self.m.namespace) or {}).get("metadata", {}).get("labels") or {})
            if not matches(peer["namespaceSelector"], own):
                return False
        return matches(peer.get("podSelector") or {}, labels)

    def check_network(self):
        policies = self.m.by_kind.get("NetworkPolicy", {})
        if not any(
            p["spec"]["podSelector"] == {}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies.values()
        ):
            self.fail("NetworkPolicy: no default deny (podSelector {}, Ingress and Egress, no rules)")
        workloads = [name for _, name, _, _ in self.m.workloads()]
        try:
            for name in workloads:
                if not self.dns_allowed(name):
                    self.fail(f"NetworkPolicy: {name} may not resolve names (port 53)")
            needed = {(a, b, port) for a, b, port, _ in self.flows}
            for source, dest, port, why in sorted(self.flows):
                if not self.allowed(source, dest, port):
                    self.fail(f"NetworkPolicy: {source} needs {dest}:{port} ({why}), but the policies block it")
            for source in workloads:
                for dest in workloads:
                    if source == dest:
                        continue
                    for c in self.workload_pod(dest)["spec"]["containers"]:
                        for p in c.get("ports") or []:
                            port = p["containerPort"]
                            if (source, dest, port) not in needed and self.allowed(source, dest, port):
                                self.fail(
                                    f"NetworkPolicy: {source} may reach {dest}:{port}, "
                                    f"though no setting of {source} names it"
                                )
            # What a Service opens to browsers (NodePort, Ingress) takes them.
            public = set()
            for service in self.m.by_kind.get("Service", {}).values():
                if service["spec"].get("type") in ("NodePort", "LoadBalancer"):
                    for p in service["spec"]["ports"]:
                        public.add(self.service_target(service["metadata"]["name"], p["port"]))
            for ingress in self.m.by_kind.get("Ingress", {}).values():
                for rule in ingress["spec"].get("rules") or []:
                    for path in rule["http"]["paths"]:
                        b = path["backend"]["service"]
                        public.add(self.service_target(b["name"], b["port"].get("number") or b["port"].get("name")))
            for target in sorted(t for t in public if t):
                if not self.allowed("outside", target[0], target[1]):
                    self.fail(f"NetworkPolicy: {target[0]}:{target[1]} is published but takes no traffic from outside")
        except ValueError as e:
            self.fail(f"NetworkPolicy: uses {e}, which this check cannot evaluate")

    def dns_allowed(self, name):
        """Port 53 over UDP and TCP, to any destination or a chosen one."""
        pod = self.workload_pod(name)
        labels = pod["metadata"].get("labels") or {}
        fake = {"spec": {"containers": []}}
        for policy in self.m.by_kind.get("NetworkPolicy", {}).values():
            if matches(policy["spec"]["podSelector"], labels) and "Egress" in policy["spec"].get("policyTypes", []):
                for rule in policy["spec"].get("egress") or []:
                    if self.port_matches(rule.get("ports"), fake, 53, "UDP") and self.port_matches(rule.get("ports"), fake, 53, "TCP"):
                        return True
        return not any(
            matches(p["spec"]["podSelector"], labels) and "Egress" in p["spec"].get("policyTypes", [])
            for p in self.m.by_kind.get("NetworkPolicy", {}).values()
        )

    # -- the image workflow builds what compose builds

    def check_workflow(self):
        path = ROOT / ".github/workflows/images.yml"
        workflow = yaml.safe_load(path.read_text())
        build_jobs = [
            job
            for job in workflow["jobs"].values()
            for step in job.get("steps", [])
            if str(step.get("uses", "")).startswith("docker/build-push-action@")
        ]
        if not build_jobs:
            self.fail(f"{path.name}: no job builds with docker/build-push-action")
            return
        job = build_jobs[0]
        services = set(job.get("strategy", {}).get("matrix", {}).get("service") or [])
        step = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
        inputs = step.get("with") or {}
        naming = " ".join(str(s.get("run", "")) for s in job["steps"])
        if "/voting-${SERVICE}" not in naming:
            self.fail(f"{path.name}: the image is not named ghcr.io/<owner>/voting-<service>")
        built = {image[len("voting-"):] for image in self.project.images}
        if services != built:
            self.fail(f"{path.name}: builds {sorted(services)}, compose builds {sorted(built)}")
        used = {image_name(c["image"]) for _, _, _, pod in self.m.workloads() for c in pod["spec"]["containers"]}
        for image in sorted(u for u in used if u.startswith("voting-")):
            if image[len("voting-"):] not in services:
                self.fail(f"{path.name}: the manifests run {image}, which it does not build")
        for service in sorted(services & built):
            compose_build = self.project.compose[service]["build"]
            mine = {
                "context": os.path.normpath(inputs.get("context", ".")),
                "dockerfile": os.path.normpath(inputs.get("file", "Dockerfile")),
                "target": str(inputs.get("target", "")).replace("${{ matrix.service }}", service) or None,
            }
            theirs = {k: os.path.normpath(v) if k != "target" and v else v for k, v in compose_build.items()}
            if mine != theirs:
                self.fail(f"{path.name}: builds {service} as {mine}, compose as {theirs}")


URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^@/\s]*)@)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?"
)


# ------------------------------------------------------------ at run time


QUIET = False  # the self-test reports only what it caught


def say(text):
    if not QUIET:
        print(text)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def probe_ok(status):  # as the kubelet judges an HTTP probe
    return status is not None and 200 <= status < 400


def as_postgres(command):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + command
    return command


class Stack:
    """Local stand-ins for the workloads of one rendered manifest."""

    def __init__(self, check):
        self.check = check
        self.tmp = Path(tempfile.mkdtemp(prefix="k8s-crosscheck-"))
        os.chmod(self.tmp, 0o755)
        self.processes = {}  # name -> (Popen, log path)
        self.local = {}  # (workload, container port) -> local port
        self.pg_bin = None

    def log_tail(self, name):
        _, log = self.processes[name]
        lines = log.read_text(errors="replace").splitlines()
        return "\n    ".join(lines[-8:])

    def start(self, name, command, env):
        log = self.tmp / f"{name}.log"
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = (process, log)
        return process

    def mounts(self, name, container, pod):
        """The container's ConfigMap, Secret and emptyDir volumes as local
        directories, as Kubernetes mounts them: [(mount path, local dir)]."""
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        found = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            local = self.tmp / "mounts" / name / mount["name"]
            source = None
            if "configMap" in volume:
                source = ("ConfigMap", volume["configMap"])
            elif "secret" in volume:
                source = ("Secret", {**volume["secret"], "name": volume["secret"]["secretName"]})
            elif "emptyDir" not in volume:
                continue  # the data volume: the stand-ins keep their own
            local.mkdir(parents=True, exist_ok=True)
            if source:
                kind, ref = source
                data = data_of(self.check.m.get(kind, ref["name"]) or {"kind": kind})
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (local / item["path"]).write_text(data.get(item["key"], ""))
            found.append((mount["mountPath"], local))
        # Longest first, so a mount inside another maps to its own directory.
        return sorted(found, key=lambda m: -len(m[0]))

    def local_path(self, text, mounts):
        """A path under a mount -> the same path under its local directory."""
        for path, local in mounts:
            if text == path or text.startswith(path.rstrip("/") + "/"):
                return str(local) + text[len(path.rstrip("/")):]
        return text

    def rewrite(self, text):
        """Service hosts and ports in URLs -> 127.0.0.1 and the local port."""

        def one(match):
            service = self.check.service_of_host(match.group("host"))
            port = int(match.group("port") or DEFAULT_PORTS.get(match.group("scheme"), 0))
            target = self.check.service_target(service, port) if service else None
            if target not in self.local:
                return match.group(0)
            userinfo = match.group("userinfo")
            userinfo = f"{userinfo}@" if userinfo is not None else ""
            return f"{match.group('scheme')}://{userinfo}127.0.0.1:{self.local[target]}"

        return URL.sub(one, text)

    def local_file(self, path, files):
        """A mounted file (its path in the container) as a local copy."""
        local = self.tmp / "mounted" / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(files[path])
        if os.geteuid() == 0:  # the postgres user reads the db's files
            shutil.chown(local, "postgres")
        return str(local)

    def app_env(self, app):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp)}
        mounts = self.mounts(self.name_of(app), app["container"], app["pod"])
        for name, value, _ in app["env"]:
            env[name] = self.local_path(self.rewrite(value), mounts)
        if app["port"]:
            env["PORT"] = str(self.local[(self.name_of(app), app["port"])])
        return env

    def name_of(self, app):
        """The workload's name (an init container's: its own, as `init-<name>`)."""
        return next((n for n, a in self.check.apps.items() if a is app), f"init-{app['container']['name']}")

    def stores(self):
        """The redis and postgres StatefulSets, by the image they run."""
        found = {}
        for kind, name, doc, pod in self.check.m.workloads():
            for c in pod["spec"]["containers"]:
                base = image_name(c["image"])
                if base in ("redis", "postgres"):
                    found[base] = (name, c, pod)
        return found

    def start_redis(self, name, container, pod):
        """With the container's args (its start script, with the mounted
        ACL and passwords) and env, on a local port."""
        port = self.local[(name, container["ports"][0]["containerPort"])]
        mounts = self.mounts(name, container, pod)
        args = [self.local_path(a, mounts) for a in container.get("args") or []]
        env = {"PATH": os.environ["PATH"]}
        for env_name, value, _ in container_env(self.check.m, container, [], name):
            env[env_name] = self.local_path(value, mounts)
        data = self.tmp / "redis"
        data.mkdir()
        # The start script writes the ACL into the data volume, here a local dir.
        env["REDIS_ACLFILE"] = str(data / "users.acl")
        self.start(
            "redis",
            args + ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""],
            env,
        )

    def start_postgres(self, name, container, pod):
        """As the postgres image's entrypoint does with the same env."""
        pod = self.check.workload_pod(name)
        files = mounted_files(self.check.m, pod, container)
        env = {n: v for n, v, _ in container_env(self.check.m, container, [], name)}
        user = env.get("POSTGRES_USER") or "postgres"
        database = env.get("POSTGRES_DB") or user
        password = env.get("POSTGRES_PASSWORD")
        if env.get("POSTGRES_PASSWORD_FILE") in files:
            password = files[env["POSTGRES_PASSWORD_FILE"]].rstrip("\n")
        port = self.local[(name, container["ports"][0]["containerPort"])]
        initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
        if not initdb:
            raise SystemExit("crosscheck: initdb not found: install it with `apt-get install postgresql`")
        self.pg_bin = initdb[-1].parent
        pg, sockets = self.tmp / "pg", self.tmp / "sockets"
        pg.mkdir()
        sockets.mkdir()
        (self.tmp / "pwfile").write_text(password or "")
        if os.geteuid() == 0:  # Postgres refuses to run as root
            for path in (pg, sockets, self.tmp / "pwfile"):
                shutil.chown(path, "postgres")
        auth = ["-A", "scram-sha-256", "--auth-local=trust", f"--pwfile={self.tmp / 'pwfile'}"] if password else ["-A", "trust"]
        initdb = subprocess.run(
            as_postgres([str(self.pg_bin / "initdb"), "-D", str(pg), "-U", user, "-E", "UTF8", "--locale=C"] + auth),
            capture_output=True,
            text=True,
        )
        if initdb.returncode != 0:
            raise SystemExit(f"crosscheck: initdb failed: {(initdb.stdout + initdb.stderr)[-1500:]}")
        def pg_ctl(action, listen):
            done = subprocess.run(
                as_postgres(
                    [str(self.pg_bin / "pg_ctl"), "-D", str(pg), "-l", str(pg / "log"), "-w", action,
                     "-o", f"-p {port} -k {sockets} -c listen_addresses={listen}"]
                ),
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                log = (pg / "log").read_text(errors="replace") if (pg / "log").exists() else ""
                raise SystemExit(f"crosscheck: postgres did not {action}: {done.stderr.strip()}\n{log[-1500:]}")

        # As the image: the set-up on a server only its socket reaches, so
        # no service connects before its role exists; then on TCP.
        pg_ctl("start", "''")
        if database != "postgres":
            subprocess.run(
                as_postgres([str(self.pg_bin / "psql"), "-h", str(sockets), "-p", str(port), "-U", user,
                             "-d", "postgres", "-qc", f'CREATE DATABASE "{database}"']),
                check=True,
                capture_output=True,
            )
        # The image's /docker-entrypoint-initdb.d/*.sh, on the socket, with
        # the container's env (its *_FILE settings as local copies).
        for path in sorted(p for p in files if p.startswith("/docker-entrypoint-initdb.d/") and p.endswith(".sh")):
            script_env = {n: (self.local_file(v, files) if v in files else v) for n, v in env.items()}
            script_env.update(PATH=f"{self.pg_bin}:{os.environ['PATH']}", PGHOST=str(sockets), PGPORT=str(port),
                              POSTGRES_USER=user, POSTGRES_DB=database)
            ran = subprocess.run(as_postgres(["bash", self.local_file(path, files)]), env=script_env,
                                 capture_output=True, text=True)
            if ran.returncode != 0:
                raise SystemExit(f"crosscheck: {path} failed: {(ran.stdout + ran.stderr)[-1500:]}")
        pg_ctl("restart", "127.0.0.1")

    def stop(self):
        for name, (process, _) in self.processes.items():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.pg_bin:
            subprocess.run(
                as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(self.tmp / "pg"), "-m", "immediate", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_stack(check):
    """The runtime checks; returns problems."""
    problems = []
    apps = {n: a for n, a in check.apps.items() if a["kind"] == "Deployment"}
    jobs = {n: a for n, a in check.apps.items() if a["kind"] == "Job"}
    stack = Stack(check)
    try:
        stores = stack.stores()
        for name, container, _ in stores.values():
            stack.local[(name, container["ports"][0]["containerPort"])] = free_port()
        for name, app in apps.items():
            stack.local[(name, app["port"])] = free_port()

        # 1. Redis and Postgres down: alive within the liveness (or startup)
        #    budget, not ready.
        started = time.monotonic()
        for name, app in apps.items():
            stack.start(name, [str(app["binary"].path)], stack.app_env(app))
        for name, app in apps.items():
            c = app["container"]
            live = c["livenessProbe"]["httpGet"]["path"]
            ready = c["readinessProbe"]["httpGet"]["path"]
            budget = probe_budget(c["startupProbe"]) if "startupProbe" in c else probe_budget(c["livenessProbe"])
            port = stack.local[(name, app["port"])]
            # Until it listens, up to the budget; then its first answer counts.
            while (status := http_status(port, live)) is None:
                if stack.processes[name][0].poll() is not None or time.monotonic() - started > budget:
                    break
                time.sleep(0.1)
            if not probe_ok(status):
                problems.append(
                    f"{name}: liveness {live} answered {status or 'nothing'} within {budget} s "
                    f"(its budget) while the stores were down: it would be restarted\n    " + stack.log_tail(name)
                )
            status = http_status(port, ready)
            if probe_ok(status):
                problems.append(f"{name}: readiness {ready} answered {status} while Redis and Postgres were down")
        if problems:
            return problems
        say(f"  stores down: every liveness probe answered within {time.monotonic() - started:.1f} s, no readiness probe did")

        # 2. The stores up: ready.
        if "redis" in stores:
            stack.start_redis(*stores["redis"])
        if "postgres" in stores:
            stack.start_postgres(*stores["postgres"])
        started = time.monotonic()
        for name, inits in sorted(check.inits.items()):
            for init in inits:
                label = f"{name}-init-{init['container']['name']}"
                args = [stack.rewrite(a) for a in init["container"].get("args") or []]
                process = stack.start(label, [str(init["binary"].path)] + args, stack.app_env(init))
                try:
                    status = process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    status = "nothing (still running after 60 s)"
                if status != 0:
                    problems.append(f"{name}: init container {init['container']['name']} exited {status}\n    "
                                    + stack.log_tail(label))
        if problems:
            return problems
        for name, app in apps.items():
            ready = app["container"]["readinessProbe"]["httpGet"]["path"]
            port = stack.local[(name, app["port"])]
            while not probe_ok(http_status(port, ready)):
                exited = stack.processes[name][0].poll()
                if exited is not None:
                    problems.append(f"{name}: exited {exited} once the stores came up\n    " + stack.log_tail(name))
                    break
                if time.monotonic() - started > 60:
                    problems.append(f"{name}: readiness {ready} not ready 60 s after the stores came up\n    " + stack.log_tail(name))
                    break
                time.sleep(0.2)
            else:
                check_ready_service(stack, name, app, port, problems)
        if problems:
            return problems
        say(f"  stores up: every service ready in {time.monotonic() - started:.1f} s")

        # 3. Ballots through the stack, as the seed Job casts them.
        if jobs:
            for name, job in jobs.items():
                args = [stack.rewrite(a) for a in job["container"].get("args") or []]
                problems += run_seed(stack, name, job["binary"].path, args, stack.app_env(job))
        else:
            vote = next((n for n, a in apps.items() if a["binary"].name == "vote"), None)
            result = next((n for n, a in apps.items() if a["binary"].name == "result"), None)
            if vote and result:
                args = [
                    "--votes=300",
                    f"--verify=http://127.0.0.1:{stack.local[(result, apps[result]['port'])]}",
                    f"http://127.0.0.1:{stack.local[(vote, apps[vote]['port'])]}/",
                ]
                problems += run_seed(stack, "seed", Path(check.project.bin_dir) / "seed", args, {"PATH": os.environ["PATH"]})

        # 4. SIGTERM: exit 0 within the grace period.
        started = time.monotonic()
        for name, app in apps.items():
            process = stack.processes[name][0]
            grace = app["pod"]["spec"].get("terminationGracePeriodSeconds", 30)
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(timeout=grace)
                if status != 0:
                    problems.append(f"{name}: exited {status} on SIGTERM\n    " + stack.log_tail(name))
            except subprocess.TimeoutExpired:
                problems.append(f"{name}: still running {grace} s (terminationGracePeriodSeconds) after SIGTERM")
        if not problems:
            say(f"  SIGTERM: every service exited 0 within its grace period ({time.monotonic() - started:.1f} s)")
        return problems
    finally:
        stack.stop()


def check_ready_service(stack, name, app, port, problems):
    """A ready service: liveness still answers, the metrics path too."""
    live = app["container"]["livenessProbe"]["httpGet"]["path"]
    status = http_status(port, live)
    if not probe_ok(status):
        problems.append(f"{name}: liveness {live} answered {status} with the stores up")
    annotations = app["pod"]["metadata"].get("annotations") or {}
    if annotations.get("prometheus.io/scrape") == "true":
        path = annotations.get("prometheus.io/path", "/metrics")
        status = http_status(port, path)
        if status != 200:
            problems.append(f"{name}: prometheus.io/path {path} answered {status}")


def run_seed(stack, name, path, args, env):
    started = time.monotonic()
    process = stack.start(name, [str(path)] + args, env)
    try:
        status = process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        return [f"{name}: seed {' '.join(args)} still running after 180 s"]
    if status != 0:
        return [f"{name}: seed {' '.join(args)} exited {status}\n    " + stack.log_tail(name)]
    say(f"  {name}: seed {' '.join(args)}: every ballot counted ({time.monotonic() - started:.1f} s)")
    return []


# ------------------------------------------------------------ self-test


def containers_of(m, name):
    for kind, workload, doc, pod in m.workloads():
        if workload == name:
            return pod["spec"]["containers"]
    raise KeyError(name)


def workload_pod_of(m, name):
    for kind, workload, doc, pod in m.workloads():
        if workload == name:
            return pod
    raise KeyError(name)


def mutate_env_name(m):
    for e in containers_of(m, "vote")[0]["env"]:
        if e["name"] == "REDIS_URL":
            e["name"] = "REDIS_ADDR"


def mutate_vote_egress(m):
    m.get("NetworkPolicy", "vote")["spec"]["egress"] = [{}]


def mutate_compose_image(m):
    containers_of(m, "vote")[0]["image"] = "voting-ballot-box:latest"


def mutate_redis_image(m):
    containers_of(m, "redis")[0]["image"] = "redis:6"


def mutate_catch_all_ingress(m):
    """An Ingress that sends every path of vote's host to vote, as the prod
    overlay did before it listed the public paths."""
    m.docs.append({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "catch-all"},
        "spec": {"rules": [{"host": "vote.example.com", "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "vote", "port": {"name": "http"}}},
        }]}}]},
    })
    m.load_index()


# (what, change, a phrase the report must contain, needs the binaries running)
MUTATIONS = [
    ("liveness probe on a wrong port",
     lambda m: containers_of(m, "vote")[0]["livenessProbe"]["httpGet"].update(port=5001),
     "livenessProbe port 5001 is no port", False),
    ("readiness probe on the container's other numbered port",
     lambda m: (containers_of(m, "result")[0]["ports"].append({"name": "metrics", "containerPort": 9000}),
                containers_of(m, "result")[0]["readinessProbe"]["httpGet"].update(port="metrics")),
     "readinessProbe probes port 9000, but result listens on 5001", False),
    ("no securityContext on the worker",
     lambda m: containers_of(m, "worker")[0].pop("securityContext"),
     "worker: readOnlyRootFilesystem is not true", False),
    ("no resource limits on result",
     lambda m: containers_of(m, "result")[0]["resources"].pop("limits"),
     "no memory in resources.limits", False),
    ("no readiness probe on redis",
     lambda m: containers_of(m, "redis")[0].pop("readinessProbe"),
     "redis: no readinessProbe", False),
    ("an env name vote does not accept", mutate_env_name, "env REDIS_ADDR is no setting of vote", False),
    ("a seed flag that does not exist",
     lambda m: containers_of(m, "seed")[0]["args"].append("--vote=10"),
     "--vote is no flag of seed", False),
    ("an image compose does not build", mutate_compose_image, "no compose service ballot-box builds it", False),
    ("a Redis image other than compose's", mutate_redis_image, "but compose runs redis:7-bookworm", False),
    ("an Ingress routing / as a prefix (/metrics public)", mutate_catch_all_ingress,
     "Ingress catch-all: / (Prefix) routes /metrics of vote to the public", False),
    ("vote may send anywhere", mutate_vote_egress, "vote may reach result:5001, though no setting", False),
    ("the db policy lets vote in",
     lambda m: m.get("NetworkPolicy", "db")["spec"]["ingress"][0]["from"].append(
         {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "vote"}}}) or
     m.get("NetworkPolicy", "vote")["spec"]["egress"].append({"ports": [{"port": 5432}]}),
     "vote may reach db:5432", False),
    ("worker cut off from Postgres",
     lambda m: m.get("NetworkPolicy", "worker")["spec"]["egress"].pop(),
     "worker needs db:5432 (DATABASE_URL), but the policies block it", False),
    ("a URL naming no Service",
     lambda m: [e.update(value="redis://queue:6379") for e in containers_of(m, "worker")[0]["env"] if e["name"] == "REDIS_URL"],
     "REDIS_URL names queue:6379, which is no Service port", False),
    ("liveness on /readyz (restarts during a Postgres outage)",
     lambda m: containers_of(m, "worker")[0]["livenessProbe"]["httpGet"].update(path="/readyz"),
     "worker: liveness /readyz answered 503", True),
    ("readiness on /healthz (ready while the stores are down)",
     lambda m: containers_of(m, "vote")[0]["readinessProbe"]["httpGet"].update(path="/healthz"),
     "readiness /healthz answered 200 while Redis and Postgres were down", True),
    ("the worker's password differs from its role's",
     lambda m: [v["secret"]["items"][0].update(key="POSTGRES_RESULT_PASSWORD")
                for v in workload_pod_of(m, "worker")["spec"]["volumes"] if v["name"] == "worker-password"],
     "password authentication failed", True),
    ("a password file no volume mounts",
     lambda m: containers_of(m, "result")[0].pop("volumeMounts"),
     "POSTGRES_PASSWORD_FILE names /run/secrets/db/POSTGRES_RESULT_PASSWORD, which no Secret", False),
    ("an init script that is not the project's",
     lambda m: m.get("ConfigMap", next(n for n in m.by_kind["ConfigMap"] if n.startswith("db-init")))["data"]
     .update({"postgres-roles.sh": "exit 0\n"}),
     "is not the project's db/postgres-roles.sh", False),
    ("the worker's init container does not migrate",
     lambda m: workload_pod_of(m, "worker")["spec"]["initContainers"][0].update(args=["healthcheck"]),
     "worker: init container migrate exited", True),
    ("vote's Redis password file holds the worker's password",
     lambda m: m.get("Deployment", "vote")["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"][0].update(
         key="redis_worker_password"),
     "REDIS_PASSWORD_FILE", True),
]


def selftest(project, path):
    global QUIET
    QUIET = True
    failures = 0
    for what, change, phrase, runtime in MUTATIONS:
        m = Manifests(path)
        m.docs = copy.deepcopy(m.docs)
        m.load_index()
        change(m)
        check = Check(project, m)
        problems = check.run()
        if runtime and not problems:
            problems = run_stack(check)
        caught = [p for p in problems if phrase in p]
        print(f"  {'caught' if caught else 'MISSED'}: {what}" + (f" -> {caught[0].splitlines()[0]}" if caught else ""))
        if not caught:
            failures += 1
            for p in problems:
                print(f"      (reported instead: {p.splitlines()[0]})")
    return failures


# ------------------------------------------------------------ main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True, help="where cargo put vote, worker, result and seed")
    parser.add_argument("--static", action="store_true", help="skip starting the binaries")
    parser.add_argument("--selftest", action="store_true", help="apply known mistakes; each must be caught")
    parser.add_argument("manifests", nargs="+")
    args = parser.parse_args()
    project = Project(args.bin_dir)
    if args.selftest:
        failures = sum(selftest(project, path) for path in args.manifests)
        print(f"crosscheck self-test: {len(MUTATIONS) * len(args.manifests) - failures} of "
              f"{len(MUTATIONS) * len(args.manifests)} mistakes caught")
        return 1 if failures else 0
    status = 0
    for path in args.manifests:
        print(f"crosscheck {path}")
        m = Manifests(path)
        check = Check(project, m)
        problems = check.run()
        if not problems:
            apps = ", ".join(f"{n} ({a['binary'].name})" for n, a in sorted(check.apps.items()))
            print(f"  static: ok: {apps}; {len(check.flows)} connections, each allowed, nothing else")
            if not args.static:
                problems = run_stack(check)
        for p in problems:
            print(f"  FAIL {p}")
        status |= bool(problems)
    for note in project.notes:
        print(f"note: {note}")
    return status


if __name__ == "__main__":
    sys.exit(main())
