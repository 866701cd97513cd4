#!/usr/bin/env python3
"""Renders every documented deployment of Cairn and checks it.

- The Helm chart (deploy/helm/cairn): `helm lint` (strict) and `helm template` through the Helm 4
  Go SDK (PyPI helm-python-sdk), with its defaults (plus the one required value, store.url)
  and with each values file of examples/, plus a few variants that reach the templates'
  other branches. Values that must be refused (missing bucket, a grace period shorter than the
  shutdown, a typo) are rendered too and must fail.
- The kustomize manifests (deploy/kustomize/base and each overlay), with `kubectl kustomize`.
- Every rendered object against the Kubernetes 1.33 OpenAPI schemas in strict mode (PyPI
  kubernetes-validate); a kind it has no schema for fails, except ServiceMonitor, checked
  against tests/deploy/servicemonitor.schema.json.
- What a reviewer checks by hand: security contexts, probes on the ports that serve them, RBAC
  (collectors read pods, and sandboxes when enabled; the compactor its Lease; the query role
  nothing, nor the Ballista scheduler and executors), the flags and CAIRN_* variables against
  `cairn <role> --help` of the binary, and a parse of each container's whole configuration by
  `cairn config` (the roles it configures), the Postgres password from a
  Secret, grace periods longer than the shutdown, HPA targets, Services, NetworkPolicies,
  memory settings within the memory limits, writable paths on a read-only root.
- The Dockerfile: hadolint, and that it runs as the user the manifests expect.
- Each semantic check is then shown a broken copy of a good rendering and must fail it.

The binary is $CAIRN_BIN, default $CARGO_TARGET_DIR/debug/cairn (target/debug/cairn). Exits
non-zero on any failure; the last line counts the checks that passed and failed.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate.utils as kv
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/cairn"
KUSTOMIZE = ROOT / "deploy/kustomize"
HERE = Path(__file__).resolve().parent
KUBE_VERSION = "1.33.0"
NAMESPACE = "cairn"
RELEASE = "cairn"

ROLES = {"serve", "collector", "query", "compact", "scheduler", "executor"}
# The Ballista roles: their settings are not `cairn config`'s (checked against their --help).
CLUSTER_ROLES = {"scheduler", "executor"}
# Variables that are not Cairn settings but that Cairn (object_store, the runtime) reads.
OTHER_ENV = re.compile(r"^(AWS_[A-Z0-9_]+|TMPDIR|RUST_BACKTRACE|OTEL_[A-Z0-9_]+)$")
SECRET_ENV = {"CAIRN_PG_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"}
# Defaults of the binary the checks below rely on when a manifest does not set the value.
DEFAULT_SHUTDOWN = "30s"
DEFAULT_QUERY_MEMORY = "2GiB"
DEFAULT_BUFFER = "512MiB"
DEFAULT_COMPACTION_MEMORY = "512MiB"
DEFAULT_SPILL_SIZE = "10GiB"
DEFAULT_EXECUTOR_MEMORY = "2GiB"
DEFAULT_SCHEDULER_ADDR = "127.0.0.1:50050"
DEFAULT_EXECUTOR_ADDR = "127.0.0.1:50051"
DEFAULT_EXECUTOR_GRPC_ADDR = "127.0.0.1:50052"


class Failure(Exception):
    pass


def fail(message: str) -> None:
    raise Failure(message)


# ---------------------------------------------------------------------------------------------
# Small parsers


def duration_seconds(text: str) -> float:
    """A humantime duration (30s, 1m30s, 500ms, 7d) in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)\s*(ms|sec|min|s|m|h|d)", text.strip())
    if not parts or re.sub(r"[\d\s]|ms|sec|min|s|m|h|d", "", text.strip()):
        fail(f"cannot read the duration {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


def cairn_size(text: str) -> int:
    """Cairn's size syntax (16MiB, 512kb, 1gib, bytes) in bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
             "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    if not m or m.group(2).lower() not in units:
        fail(f"{text!r} is not a size Cairn reads (e.g. 512MiB)")
    return int(m.group(1)) * units[m.group(2).lower()]


def quantity_bytes(q) -> int:
    """A Kubernetes memory or storage quantity in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?", str(q))
    if not m:
        fail(f"cannot read the quantity {q!r}")
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "m": 0.001}[m.group(2)]
    return int(float(m.group(1)) * mult)


def listen_port(addr: str) -> int | None:
    if addr == "off":
        return None
    return int(addr.rsplit(":", 1)[1])


def is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# The binary and the Dockerfile


@dataclass
class Help:
    flags: set[str]
    env: set[str]


def binary_path() -> Path:
    if os.environ.get("CAIRN_BIN"):
        return Path(os.environ["CAIRN_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "debug/cairn"


def read_help(binary: Path) -> dict[str, Help]:
    if not binary.is_file():
        fail(f"no cairn binary at {binary}: build it (cargo build --workspace) or set CAIRN_BIN")
    helps = {}
    for role in sorted(ROLES) + ["config"]:
        out = subprocess.run([str(binary), role, "--help"], capture_output=True, text=True,
                             env=clean_env({}), timeout=60)
        if out.returncode != 0:
            fail(f"`cairn {role} --help` failed: {out.stderr.strip()}")
        flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)", out.stdout, re.M))
        env = set(re.findall(r"\[env: ([A-Z0-9_]+)", out.stdout))
        if not flags or not env:
            fail(f"`cairn {role} --help` lists no flags or variables")
        helps[role] = Help(flags, env)
    return helps


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    env.update(extra)
    return env


@dataclass
class Image:
    env: dict[str, str]
    user: str
    entrypoint: list[str]
    expose: set[int]
    builder_env: dict[str, str]
    text: str


def read_dockerfile() -> Image:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM ", joined, flags=re.M)
    if len(stages) < 3:
        fail("the Dockerfile is not multi-stage")
    runtime = stages[-1]

    def env_of(stage: str) -> dict[str, str]:
        env = {}
        for line in re.findall(r"^ENV (.+)$", stage, re.M):
            for k, v in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", line):
                env[k] = v.strip('"')
        return env

    user = re.findall(r"^USER (\S+)", runtime, re.M)
    entry = re.findall(r"^ENTRYPOINT (\[.*\])", runtime, re.M)
    expose = {int(p) for line in re.findall(r"^EXPOSE (.+)$", runtime, re.M) for p in line.split()}
    if not user or not entry:
        fail("the Dockerfile's last stage has no USER or no ENTRYPOINT")
    builder = next((s for s in stages if "cargo build" in s), "")
    return Image(env_of(runtime), user[-1], json.loads(entry[-1]), expose, env_of(builder), text)


def check_dockerfile(image: Image, helps: dict[str, Help], hadolint: str | None) -> None:
    uid = image.user.split(":")[0]
    if not uid.isdigit() or int(uid) == 0:
        fail(f"USER must be a numeric non-root uid (Kubernetes' runAsNonRoot checks it), not {image.user}")
    if image.entrypoint != ["/cairn"]:
        fail(f"ENTRYPOINT is {image.entrypoint}, the manifests pass the role as args to /cairn")
    for name in image.env:
        if name.startswith("CAIRN_") and name not in helps["serve"].env:
            fail(f"the image sets {name}, which `cairn serve --help` does not list")
    pg = image.env.get("CAIRN_PG_ADDR", "127.0.0.1:5433")
    if pg != "off" and not is_loopback(pg):
        fail(f"the image's CAIRN_PG_ADDR {pg} is not loopback: Cairn refuses it without a password")
    for var in ("CAIRN_OTLP_GRPC_ADDR", "CAIRN_OTLP_HTTP_ADDR", "CAIRN_HTTP_ADDR"):
        if is_loopback(image.env.get(var, "127.0.0.1:0")):
            fail(f"the image leaves {var} on loopback: unreachable from outside the container")
        if listen_port(image.env[var]) not in image.expose:
            fail(f"the image does not EXPOSE the port of {var}")
    if image.builder_env.get("CAIRN_UI_REQUIRED") != "1":
        fail("the build stage must set CAIRN_UI_REQUIRED=1 (a missing UI fails the build)")
    if not re.search(r"cargo build --release --workspace --locked", image.text):
        fail("the build stage must run `cargo build --release --workspace --locked`")
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("target", "**/node_modules", ".git"):
        if needed not in ignore:
            fail(f".dockerignore does not exclude {needed}")
    if hadolint:
        out = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                             capture_output=True, text=True)
        if out.returncode != 0 or out.stdout.strip():
            fail(f"hadolint: {out.stdout.strip() or out.stderr.strip()}")


# ---------------------------------------------------------------------------------------------
# Rendering


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def helm_lint(values: dict) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE,
                       kube_version="v" + KUBE_VERSION)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if problems or report.get("errors"):
        fail("helm lint: " + "; ".join(f"{m['path']}: {m['error'].strip()}" for m in problems)
             + "; ".join(report.get("errors") or []))


def helm_render(values: dict) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def kustomize_render(path: Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        fail(f"kubectl kustomize {path.relative_to(ROOT)}: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# ---------------------------------------------------------------------------------------------
# Schema validation


SERVICE_MONITOR_SCHEMA = json.loads((HERE / "servicemonitor.schema.json").read_text())


def validate_schemas(docs: list[dict]) -> None:
    errors = []
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "ServiceMonitor":
            try:
                jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA).validate(doc)
            except jsonschema.ValidationError as e:
                errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
            continue
        try:
            kv.validate(doc, KUBE_VERSION, strict=True)
        except kv.ValidationError as e:
            errors.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
    if errors:
        fail("kubernetes-validate --strict -k " + KUBE_VERSION + ":\n    " + "\n    ".join(errors))


# ---------------------------------------------------------------------------------------------
# Semantic checks


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


@dataclass
class Container:
    workload: dict
    pod: dict
    spec: dict
    role: str
    args: list[str]
    env: dict[str, dict] = field(default_factory=dict)  # name -> env entry

    @property
    def name(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}/{self.spec['name']}"

    def value(self, var: str, image: Image) -> str | None:
        """A plain value of the variable (the manifest's, else the image's), None if unset or
        from a reference."""
        entry = self.env.get(var)
        if entry is None:
            return image.env.get(var)
        return entry.get("value")

    def flag(self, flag: str) -> str | None:
        for i, a in enumerate(self.args):
            if a == f"--{flag}" and i + 1 < len(self.args):
                return self.args[i + 1]
            if a.startswith(f"--{flag}="):
                return a.split("=", 1)[1]
        return None

    def setting(self, flag: str, var: str, image: Image, default: str | None = None) -> str | None:
        """A setting's value as the binary sees it (flag, variable, image, config file, default)."""
        v = self.flag(flag)
        if v is None:
            v = self.value(var, image)
        if v is None:
            v = self.config_values.get(flag.replace("-", "_"))
        return default if v is None else str(v)

    config_values: dict = field(default_factory=dict)


class Bundle:
    """The objects of one rendering."""

    def __init__(self, name: str, docs: list[dict], helm_values: dict | None):
        self.name = name
        self.docs = docs
        self.helm_values = helm_values  # None for kustomize

    def of(self, *kinds: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") in kinds]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        for d in self.docs:
            if d.get("kind") == kind and d["metadata"].get("name") == name:
                if namespace is None or d["metadata"].get("namespace") in (None, namespace):
                    return d
        return None

    def namespace_of(self, doc: dict) -> str:
        return doc["metadata"].get("namespace") or NAMESPACE

    def containers(self, image: Image) -> list[Container]:
        out = []
        for w in self.of(*WORKLOAD_KINDS):
            pod = w["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                args = list(c.get("command", [])) + list(c.get("args", []))
                if c.get("command") and c["command"][0] == "/cairn":
                    args = args[1:]
                elif c.get("command"):
                    fail(f"{w['metadata']['name']}/{c['name']}: a command other than /cairn")
                if not args or args[0] not in ROLES:
                    fail(f"{w['kind']}/{w['metadata']['name']}/{c['name']}: args {args} name no Cairn role")
                cont = Container(w, pod, c, args[0], args[1:])
                for e in c.get("env", []):
                    if e["name"] in cont.env:
                        fail(f"{cont.name}: {e['name']} is set twice")
                    cont.env[e["name"]] = e
                for src in c.get("envFrom", []):
                    ref = src.get("configMapRef") or src.get("secretRef")
                    kind = "ConfigMap" if "configMapRef" in src else "Secret"
                    obj = self.get(kind, ref["name"], self.namespace_of(w))
                    if obj is None:
                        fail(f"{cont.name}: envFrom {kind} {ref['name']} is not in the manifests")
                    data = obj.get("data") or obj.get("stringData") or {}
                    for k, v in data.items():
                        name = src.get("prefix", "") + k
                        if name not in cont.env:
                            cont.env[name] = {"name": name, "value": v} if kind == "ConfigMap" else \
                                {"name": name, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": k}}}
                cont.config_values = self.config_file(cont, image)[1] or {}
                out.append(cont)
        return out

    def config_file(self, c: Container, image: Image) -> tuple[str | None, dict | None]:
        """The TOML config file the container reads, as text and parsed."""
        path = c.flag("config") or c.value("CAIRN_CONFIG", image)
        if not path:
            return None, None
        for m in c.spec.get("volumeMounts", []):
            mount = m["mountPath"].rstrip("/")
            if path.startswith(mount + "/"):
                vol = next((v for v in c.pod.get("volumes", []) if v["name"] == m["name"]), None)
                if vol and "configMap" in vol:
                    cm = self.get("ConfigMap", vol["configMap"]["name"], self.namespace_of(c.workload))
                    if cm is None:
                        fail(f"{c.name}: ConfigMap {vol['configMap']['name']} is not in the manifests")
                    key = m.get("subPath") or path[len(mount) + 1:]
                    if key not in cm.get("data", {}):
                        fail(f"{c.name}: ConfigMap {cm['metadata']['name']} has no key {key}")
                    text = cm["data"][key]
                    try:
                        return text, tomllib.loads(text)
                    except tomllib.TOMLDecodeError as e:
                        fail(f"{c.name}: {path} is not TOML: {e}")
        fail(f"{c.name}: the config file {path} is on no ConfigMap volume")
        return None, None


def check_security(b: Bundle, image: Image, cs: list[Container]) -> None:
    uid = int(image.user.split(":")[0])
    for w in b.of(*WORKLOAD_KINDS):
        pod = w["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        name = f"{w['kind']}/{w['metadata']['name']}"
        if pod.get("enableServiceLinks") is not False:
            fail(f"{name}: enableServiceLinks must be false (Service variables such as "
                 "CAIRN_QUERY_PORT land in Cairn's CAIRN_* namespace)")
        if psc.get("runAsNonRoot") is not True:
            fail(f"{name}: pod securityContext.runAsNonRoot is not true")
        for key in ("runAsUser", "runAsGroup"):
            if psc.get(key) != uid:
                fail(f"{name}: pod securityContext.{key} is {psc.get(key)}, the image's user is {uid}")
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            sc = c.get("securityContext", {})
            cname = f"{name}/{c['name']}"
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cname}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cname}: readOnlyRootFilesystem is not true")
            if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
                fail(f"{cname}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                fail(f"{cname}: capabilities are added")
            if sc.get("privileged"):
                fail(f"{cname}: privileged")
            if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                fail(f"{cname}: runAsNonRoot is not true")
            for key in ("runAsUser", "runAsGroup"):
                v = sc.get(key, psc.get(key))
                if v != uid:
                    fail(f"{cname}: {key} is {v}, the image's user is {uid}")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                fail(f"{cname}: seccompProfile is {seccomp}, not RuntimeDefault")
    for c in cs:
        if not c.spec.get("resources", {}).get("requests"):
            fail(f"{c.name}: no resource requests")
        if not c.spec.get("resources", {}).get("limits", {}).get("memory"):
            fail(f"{c.name}: no memory limit")


def role_http(c: Container, image: Image) -> set[int]:
    """The ports on which the container's role serves /ready and /live."""
    ports = set()
    if c.role in ("collector", "serve"):
        ports.add(listen_port(c.setting("otlp-http-addr", "CAIRN_OTLP_HTTP_ADDR", image, "127.0.0.1:4318")))
    if c.role in ("query", "serve"):
        ports.add(listen_port(c.setting("http-addr", "CAIRN_HTTP_ADDR", image, "127.0.0.1:3200")))
    if c.role in ("compact", "scheduler", "executor"):
        ports.add(listen_port(c.setting("metrics-addr", "CAIRN_METRICS_ADDR", image, "127.0.0.1:9464")))
    return ports


def container_port(c: Container, port) -> int:
    for p in c.spec.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    fail(f"{c.name}: port {port!r} is not one of the container's ports")
    return 0


def check_listeners_and_probes(b: Bundle, image: Image, cs: list[Container]) -> None:
    for c in cs:
        listeners = {
            "collector": [("otlp-grpc-addr", "CAIRN_OTLP_GRPC_ADDR", "127.0.0.1:4317"),
                          ("otlp-http-addr", "CAIRN_OTLP_HTTP_ADDR", "127.0.0.1:4318")],
            "query": [("http-addr", "CAIRN_HTTP_ADDR", "127.0.0.1:3200"),
                      ("pg-addr", "CAIRN_PG_ADDR", "127.0.0.1:5433")],
            "compact": [("metrics-addr", "CAIRN_METRICS_ADDR", "127.0.0.1:9464")],
            "scheduler": [("scheduler-addr", "CAIRN_SCHEDULER_ADDR", DEFAULT_SCHEDULER_ADDR),
                          ("metrics-addr", "CAIRN_METRICS_ADDR", "127.0.0.1:9464")],
            "executor": [("executor-addr", "CAIRN_EXECUTOR_ADDR", DEFAULT_EXECUTOR_ADDR),
                         ("executor-grpc-addr", "CAIRN_EXECUTOR_GRPC_ADDR", DEFAULT_EXECUTOR_GRPC_ADDR),
                         ("metrics-addr", "CAIRN_METRICS_ADDR", "127.0.0.1:9464")],
        }
        mine = listeners.get(c.role) or listeners["collector"] + listeners["query"]
        declared = {p["containerPort"] for p in c.spec.get("ports", [])}
        for flag, var, default in mine:
            addr = c.setting(flag, var, image, default)
            port = listen_port(addr)
            if port is None:
                continue
            if var == "CAIRN_PG_ADDR" and is_loopback(addr):
                continue
            if is_loopback(addr):
                fail(f"{c.name}: {var} listens on loopback ({addr}): unreachable by Services and probes")
            if port not in declared:
                fail(f"{c.name}: {var} listens on {port}, which is not a containerPort ({sorted(declared)})")
        http = role_http(c, image)
        for kind, paths in (("readinessProbe", {"/ready"}), ("livenessProbe", {"/live"}),
                            ("startupProbe", {"/live", "/ready"})):
            probe = c.spec.get(kind)
            if probe is None:
                if kind == "startupProbe" and c.role in ("collector", "serve"):
                    fail(f"{c.name}: no startupProbe (a collector replays its log before it listens)")
                if kind != "startupProbe":
                    fail(f"{c.name}: no {kind}")
                continue
            get = probe.get("httpGet")
            if not get:
                fail(f"{c.name}: {kind} is not an HTTP probe")
            if get.get("path") not in paths:
                fail(f"{c.name}: {kind} asks {get.get('path')}, not {' or '.join(sorted(paths))}")
            port = container_port(c, get["port"])
            if port not in http:
                fail(f"{c.name}: {kind} asks port {port}, where `cairn {c.role}` serves no /ready or /live ({sorted(http)})")
        if c.role in ("collector", "serve"):
            # The log is replayed before the listeners bind: the startup probe must allow it.
            sp = c.spec["startupProbe"]
            budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
            if budget < 120:
                fail(f"{c.name}: the startupProbe gives {budget} s to replay the log, less than 120 s")


def check_flags(b: Bundle, image: Image, cs: list[Container], helps: dict[str, Help]) -> None:
    for c in cs:
        h = helps[c.role]
        for a in c.args:
            if a.startswith("--"):
                flag = a[2:].split("=", 1)[0]
                if flag not in h.flags:
                    fail(f"{c.name}: `cairn {c.role}` has no flag --{flag}")
        for var in c.env:
            if var.startswith("CAIRN_"):
                if var not in h.env:
                    fail(f"{c.name}: `cairn {c.role} --help` lists no variable {var}")
            elif not OTHER_ENV.match(var):
                fail(f"{c.name}: {var} is neither a Cairn variable nor one Cairn reads")
        _, config = b.config_file(c, image)
        for key in config or {}:
            flag = key.replace("_", "-")
            if flag not in h.flags:
                fail(f"{c.name}: the config file's key {key} is no setting of `cairn {c.role}`")
            var = "CAIRN_" + key.upper()
            if var in c.env or var in image.env:
                where = "the manifest" if var in c.env else "the image"
                fail(f"{c.name}: the config file sets {key}, but {where} sets {var}, which overrides it")
        for var in SECRET_ENV & set(c.env):
            if "value" in c.env[var]:
                fail(f"{c.name}: {var} is a literal value, not a reference to a Secret")


def run_config(b: Bundle, image: Image, cs: list[Container], binary: Path) -> None:
    """`cairn config` reads each container's flags, variables and config file as its role would."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(cs):
            if c.role in CLUSTER_ROLES:
                continue
            env = dict(image.env)
            for name, e in c.env.items():
                if "value" in e:
                    env[name] = str(e["value"])
                elif "valueFrom" in e:
                    ref = e["valueFrom"]
                    if "fieldRef" in ref:
                        env[name] = {"metadata.namespace": NAMESPACE}.get(ref["fieldRef"]["fieldPath"], "cairn-pod-0")
                    elif "secretKeyRef" in ref:
                        env[name] = "secret-from-" + ref["secretKeyRef"]["name"]
                    elif "configMapKeyRef" in ref:
                        cm = b.get("ConfigMap", ref["configMapKeyRef"]["name"]) or {}
                        env[name] = cm.get("data", {}).get(ref["configMapKeyRef"]["key"], "")
                    elif "resourceFieldRef" in ref:
                        env[name] = "1"
                else:
                    env[name] = ""
            text, _ = b.config_file(c, image)
            args = list(c.args)
            if text is not None:
                path = Path(tmp) / f"config-{i}.toml"
                path.write_text(text)
                if c.flag("config"):
                    args = [f"--config={path}" if a.startswith("--config") else a for a in args]
                    args = [a for j, a in enumerate(args) if not (j > 0 and args[j - 1] == "--config")]
                env["CAIRN_CONFIG"] = str(path)
            out = subprocess.run([str(binary), "config", *args], capture_output=True, text=True,
                                 env=clean_env(env), timeout=60, cwd=tmp)
            if out.returncode != 0:
                fail(f"{c.name}: `cairn config` refuses its settings: {(out.stderr or out.stdout).strip()}")


def rules_of_subject(b: Bundle, sa: str, ns: str) -> list[tuple[str, str | None, dict]]:
    """(binding kind, namespace, rule) for every rule bound to the ServiceAccount."""
    out = []
    for binding in b.of("RoleBinding", "ClusterRoleBinding"):
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                   and s.get("namespace", b.namespace_of(binding)) == ns for s in subjects):
            continue
        ref = binding["roleRef"]
        role = b.get(ref["kind"], ref["name"],
                     b.namespace_of(binding) if ref["kind"] == "Role" else None)
        if role is None:
            fail(f"{binding['kind']}/{binding['metadata']['name']} refers to {ref['kind']}/{ref['name']}, which is not in the manifests")
        where = None if binding["kind"] == "ClusterRoleBinding" else b.namespace_of(binding)
        for rule in role.get("rules", []):
            out.append((binding["kind"], where, rule))
    return out


def check_rbac(b: Bundle, image: Image, cs: list[Container]) -> None:
    for role in b.of("Role", "ClusterRole"):
        for rule in role.get("rules", []):
            for key in ("apiGroups", "resources", "verbs"):
                if "*" in rule.get(key, []):
                    fail(f"{role['kind']}/{role['metadata']['name']}: a wildcard in {key}")
            if rule.get("nonResourceURLs"):
                fail(f"{role['kind']}/{role['metadata']['name']}: nonResourceURLs")
    for c in cs:
        ns = b.namespace_of(c.workload)
        sa = c.pod.get("serviceAccountName", "default")
        if sa != "default" and b.get("ServiceAccount", sa, ns) is None:
            fail(f"{c.name}: ServiceAccount {sa} is not in the manifests")
        bound = rules_of_subject(b, sa, ns)
        automount = c.pod.get("automountServiceAccountToken")
        if automount is None:
            acct = b.get("ServiceAccount", sa, ns) or {}
            automount = acct.get("automountServiceAccountToken", True)
        read = {"get", "list", "watch"}
        if c.role in ("collector", "serve"):
            kube = c.setting("kube", "CAIRN_KUBE", image, "auto")
            sandboxes = (c.value("CAIRN_KUBE_SANDBOXES", image) or "false").lower() in ("true", "1", "yes", "on") \
                or "--kube-sandboxes" in c.args
            watch_ns = c.setting("kube-namespace", "CAIRN_KUBE_NAMESPACE", image, "")
            pods = sbx = False
            for kind, where, rule in bound:
                groups, resources, verbs = set(rule.get("apiGroups", [])), set(rule.get("resources", [])), set(rule.get("verbs", []))
                if groups == {""} and resources == {"pods"}:
                    pods = True
                elif groups == {"agents.x-k8s.io"} and resources == {"sandboxes"}:
                    sbx = True
                else:
                    fail(f"{c.name}: the collector's ServiceAccount may {sorted(verbs)} {sorted(resources)} in {sorted(groups)}; it needs only pods (and sandboxes)")
                if not verbs <= read:
                    fail(f"{c.name}: the collector may {sorted(verbs - read)} {sorted(resources)}; read-only (get, list, watch) is all it needs")
                if not read <= verbs:
                    fail(f"{c.name}: the collector may not {sorted(read - verbs)} {sorted(resources)}")
                if watch_ns and (kind == "ClusterRoleBinding" or where != watch_ns):
                    fail(f"{c.name}: watches namespace {watch_ns} but is granted {kind} in {where or 'all namespaces'}")
                if not watch_ns and kind != "ClusterRoleBinding":
                    fail(f"{c.name}: watches all namespaces but is granted only a RoleBinding in {where}")
            if kube == "off":
                if bound:
                    fail(f"{c.name}: pod enrichment is off, yet the ServiceAccount is granted {len(bound)} rules")
            else:
                if not pods:
                    fail(f"{c.name}: CAIRN_KUBE={kube}, but nothing grants get/list/watch on pods")
                if not automount:
                    fail(f"{c.name}: pod enrichment needs the ServiceAccount token, and it is not mounted")
            if sandboxes and not sbx:
                fail(f"{c.name}: watches Sandboxes, but nothing grants get/list/watch on sandboxes.agents.x-k8s.io")
            if sbx and not sandboxes:
                fail(f"{c.name}: granted sandboxes.agents.x-k8s.io without watching them")
        elif c.role in ("query", "scheduler", "executor"):
            if bound:
                fail(f"{c.name}: the {c.role} role needs no Kubernetes API access, yet is granted {len(bound)} rules")
            if automount:
                fail(f"{c.name}: the {c.role} role mounts a ServiceAccount token it never uses")
        elif c.role == "compact":
            if c.setting("compactor-lease", "CAIRN_COMPACTOR_LEASE", image, "off") != "kube":
                fail(f"{c.name}: CAIRN_COMPACTOR_LEASE is not kube: replicas would compact at once")
            for var, path in (("CAIRN_LEASE_NAMESPACE", "metadata.namespace"), ("CAIRN_LEASE_IDENTITY", "metadata.name")):
                ref = c.env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                if ref != path:
                    fail(f"{c.name}: {var} must come from the downward API's {path}")
            lease = c.setting("lease-name", "CAIRN_LEASE_NAME", image, "cairn-compactor")
            duration_seconds(c.setting("lease-duration", "CAIRN_LEASE_DURATION", image, "15s"))
            verbs: set[str] = set()
            for kind, where, rule in bound:
                if set(rule.get("apiGroups", [])) != {"coordination.k8s.io"} or set(rule.get("resources", [])) != {"leases"}:
                    fail(f"{c.name}: the compactor is granted {rule.get('resources')} in {rule.get('apiGroups')}; it needs only leases")
                if kind == "ClusterRoleBinding" or where != ns:
                    fail(f"{c.name}: the lease rights must be a RoleBinding in {ns}, not {kind} in {where}")
                names = rule.get("resourceNames")
                if names and lease not in names:
                    fail(f"{c.name}: the Role allows leases {names}, not {lease}")
                extra = set(rule.get("verbs", [])) - {"get", "create", "update", "list", "watch", "patch"}
                if extra:
                    fail(f"{c.name}: the compactor may {sorted(extra)} leases")
                verbs |= set(rule.get("verbs", []))
            missing = {"get", "create", "update"} - verbs
            if missing:
                fail(f"{c.name}: the compactor may not {sorted(missing)} its Lease")
            if not automount:
                fail(f"{c.name}: the compactor needs its ServiceAccount token for the Lease")


def check_secrets_and_store(b: Bundle, image: Image, cs: list[Container]) -> None:
    stores = set()
    for c in cs:
        pg = c.setting("pg-addr", "CAIRN_PG_ADDR", image, "127.0.0.1:5433") if c.role in ("query", "serve") else "off"
        if pg != "off" and not is_loopback(pg):
            entry = c.env.get("CAIRN_PG_PASSWORD")
            ref = (entry or {}).get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                fail(f"{c.name}: Postgres listens on {pg} without CAIRN_PG_PASSWORD from a Secret (Cairn refuses to start)")
            secret = b.get("Secret", ref["name"], b.namespace_of(c.workload))
            if secret is not None:
                keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
                if ref["key"] not in keys:
                    fail(f"{c.name}: Secret {ref['name']} has no key {ref['key']}")
            elif b.helm_values is not None and not b.helm_values.get("pg", {}).get("existingSecret"):
                fail(f"{c.name}: the password's Secret {ref['name']} is neither rendered nor named by pg.existingSecret")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if var in c.env and not c.env[var].get("valueFrom", {}).get("secretKeyRef"):
                fail(f"{c.name}: {var} is not taken from a Secret")
        if ("AWS_ACCESS_KEY_ID" in c.env) != ("AWS_SECRET_ACCESS_KEY" in c.env):
            fail(f"{c.name}: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")
        store = c.setting("store", "CAIRN_STORE", image, "./cairn-data")
        if c.role != "serve":
            if not re.match(r"^(s3|gs|az)://", store):
                fail(f"{c.name}: `cairn {c.role}` must share an object store with the other roles, not {store!r}")
        elif c.workload["spec"].get("replicas", 1) != 1:
            fail(f"{c.name}: `cairn serve` runs once per store, with replicas 1")
        stores.add(store)
        if c.value("AWS_ENDPOINT_URL", image, ) and c.value("AWS_ENDPOINT_URL", image).startswith("http://") \
                and (c.value("AWS_ALLOW_HTTP", image) or "").lower() != "true":
            fail(f"{c.name}: an http:// AWS_ENDPOINT_URL needs AWS_ALLOW_HTTP=true")
    if len(stores) > 1:
        fail(f"the roles do not share one store: {sorted(stores)}")


def writable_mount(c: Container, path: str) -> dict | None:
    best = None
    for m in c.spec.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    if best is None or best.get("readOnly"):
        return None
    return best


def volume_of(c: Container, mount: dict) -> dict:
    for v in c.pod.get("volumes", []):
        if v["name"] == mount["name"]:
            return v
    for t in c.workload["spec"].get("volumeClaimTemplates", []):
        if t["metadata"]["name"] == mount["name"]:
            return {"name": mount["name"], "persistentVolumeClaim": t}
    fail(f"{c.name}: volumeMount {mount['name']} has no volume")
    return {}


def check_storage_and_shutdown(b: Bundle, image: Image, cs: list[Container]) -> None:
    for c in cs:
        kind = c.workload["kind"]
        paths = [("TMPDIR", c.value("TMPDIR", image) or "/tmp")]
        ack = c.setting("ack", "CAIRN_ACK", image, "wal")
        if c.role in ("collector", "serve"):
            if ack == "wal":
                paths.append(("CAIRN_WAL_DIR", c.setting("wal-dir", "CAIRN_WAL_DIR", image, "./cairn-wal")))
            grace = c.pod.get("terminationGracePeriodSeconds", 30)
            shutdown = duration_seconds(c.setting("shutdown-timeout", "CAIRN_SHUTDOWN_TIMEOUT", image, DEFAULT_SHUTDOWN))
            sleep = ((c.spec.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
            if grace <= shutdown + sleep:
                fail(f"{c.name}: terminationGracePeriodSeconds {grace} does not exceed the preStop sleep "
                     f"({sleep} s) plus the shutdown timeout ({shutdown:g} s): the log is cut off mid-drain")
        if c.role in ("query", "serve"):
            paths.append(("CAIRN_SPILL_DIR", c.setting("spill-dir", "CAIRN_SPILL_DIR", image, "/tmp/cairn-spill")))
        if c.role == "executor":
            paths.append(("CAIRN_EXECUTOR_WORK_DIR", c.setting("executor-work-dir", "CAIRN_EXECUTOR_WORK_DIR", image, "/tmp/cairn-executor")))
        if c.role == "serve":
            store = c.setting("store", "CAIRN_STORE", image, "./cairn-data")
            if not re.match(r"^[a-z0-9]+://", store) or store.startswith("file://"):
                paths.append(("CAIRN_STORE", store.removeprefix("file://")))
        for var, path in paths:
            if not path.startswith("/"):
                fail(f"{c.name}: {var} is the relative path {path!r}; the image's working directory is read-only")
            m = writable_mount(c, path)
            if m is None:
                fail(f"{c.name}: {var}={path} is on the read-only root filesystem (no writable volume mounted there)")
            vol = volume_of(c, m)
            if var == "CAIRN_STORE" and "persistentVolumeClaim" not in vol:
                fail(f"{c.name}: the local store {path} is not on a PersistentVolumeClaim")
            if var == "CAIRN_WAL_DIR":
                if kind == "StatefulSet" and "persistentVolumeClaim" not in vol:
                    fail(f"{c.name}: a StatefulSet's log {path} is not on its PersistentVolumeClaim")
                if "emptyDir" in vol and not vol["emptyDir"].get("sizeLimit"):
                    fail(f"{c.name}: the log's emptyDir has no sizeLimit")
            if var == "CAIRN_EXECUTOR_WORK_DIR":
                limit = (vol.get("emptyDir") or {}).get("sizeLimit")
                if "emptyDir" in vol and not limit:
                    fail(f"{c.name}: the executor's work directory is an emptyDir without sizeLimit")
                spill = cairn_size(c.setting("spill-size", "CAIRN_SPILL_SIZE", image, DEFAULT_SPILL_SIZE))
                if limit and spill >= quantity_bytes(limit):
                    fail(f"{c.name}: CAIRN_SPILL_SIZE ({spill >> 20} MiB) leaves no room for stage outputs in its work directory's {limit}")
            if var == "CAIRN_SPILL_DIR":
                limit = (vol.get("emptyDir") or {}).get("sizeLimit")
                spill = cairn_size(c.setting("spill-size", "CAIRN_SPILL_SIZE", image, DEFAULT_SPILL_SIZE))
                if limit and spill > quantity_bytes(limit):
                    fail(f"{c.name}: CAIRN_SPILL_SIZE ({spill >> 20} MiB) exceeds its emptyDir's sizeLimit {limit}")
        if c.role == "collector" and ack == "stored" and kind == "StatefulSet":
            fail(f"{c.name}: a StatefulSet for collectors that keep no log (ack stored)")
        if kind == "StatefulSet" and c.role == "collector" and not c.workload["spec"].get("volumeClaimTemplates"):
            fail(f"{c.name}: a collector StatefulSet without volumeClaimTemplates")


def check_memory(b: Bundle, image: Image, cs: list[Container]) -> None:
    for c in cs:
        limit = c.spec.get("resources", {}).get("limits", {}).get("memory")
        if not limit:
            continue
        limit_b = quantity_bytes(limit)
        budgets = []
        if c.role in ("query", "serve"):
            budgets.append(("query-memory", "CAIRN_QUERY_MEMORY", DEFAULT_QUERY_MEMORY))
        if c.role in ("collector", "serve"):
            budgets.append(("max-buffer-size", "CAIRN_MAX_BUFFER_SIZE", DEFAULT_BUFFER))
        if c.role in ("compact", "serve"):
            budgets.append(("compaction-memory", "CAIRN_COMPACTION_MEMORY", DEFAULT_COMPACTION_MEMORY))
        if c.role == "executor":
            budgets.append(("executor-memory", "CAIRN_EXECUTOR_MEMORY", DEFAULT_EXECUTOR_MEMORY))
        total = 0
        for flag, var, default in budgets:
            v = cairn_size(c.setting(flag, var, image, default))
            if v > limit_b * 3 // 4:
                fail(f"{c.name}: {var} ({v >> 20} MiB) leaves less than a quarter of the memory limit {limit} to the rest of the process")
            total += v
        if total > limit_b * 3 // 4:
            fail(f"{c.name}: its memory budgets add up to {total >> 20} MiB, more than 3/4 of the memory limit {limit}")


def pods_matching(b: Bundle, selector: dict, ns: str) -> list[dict]:
    out = []
    for w in b.of(*WORKLOAD_KINDS):
        if b.namespace_of(w) != ns:
            continue
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            out.append(w)
    return out


def label_selector_matches(sel: dict, labels: dict) -> bool:
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        val = labels.get(e["key"])
        op = e["operator"]
        if op == "In" and val not in e["values"] or op == "NotIn" and val in e["values"] \
                or op == "Exists" and e["key"] not in labels or op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def check_workload_objects(b: Bundle, image: Image, cs: list[Container]) -> None:
    by_workload = {}
    for c in cs:
        by_workload.setdefault((c.workload["kind"], c.workload["metadata"]["name"]), []).append(c)
    roles = [c.role for c in cs]
    if roles.count("compact") > 1:
        fail("more than one compactor workload")
    compactors = [c for c in cs if c.role == "compact"]
    if compactors and compactors[0].workload["kind"] != "Deployment":
        fail("the compactor is not a Deployment")
    if "serve" in roles and set(roles) & {"collector", "query", "compact"}:
        fail("`cairn serve` beside separate roles: two writers compact one store")
    schedulers = [c for c in cs if c.role == "scheduler"]
    if len(schedulers) > 1 or any(c.workload["spec"].get("replicas", 1) != 1 for c in schedulers):
        fail("more than one Ballista scheduler: each keeps its jobs and executors to itself")
    if any(c.role == "executor" for c in cs) and not schedulers:
        fail("executors without a scheduler")
    grpc_ports = {
        "scheduler": [("scheduler-addr", "CAIRN_SCHEDULER_ADDR", DEFAULT_SCHEDULER_ADDR)],
        "executor": [("executor-addr", "CAIRN_EXECUTOR_ADDR", DEFAULT_EXECUTOR_ADDR),
                     ("executor-grpc-addr", "CAIRN_EXECUTOR_GRPC_ADDR", DEFAULT_EXECUTOR_GRPC_ADDR)],
    }
    # Services select pods, and every port reaches a port the role listens on.
    for svc in b.of("Service"):
        sel = svc["spec"].get("selector") or {}
        ws = pods_matching(b, sel, b.namespace_of(svc))
        if not ws:
            fail(f"Service/{svc['metadata']['name']} selects no pods of the manifests")
        for w in ws:
            for c in by_workload[(w["kind"], w["metadata"]["name"])]:
                for p in svc["spec"].get("ports", []):
                    target = p.get("targetPort", p["port"])
                    port = container_port(c, target)
                    proto = p.get("appProtocol")
                    if c.role in ("collector", "serve") and port == listen_port(c.setting("otlp-grpc-addr", "CAIRN_OTLP_GRPC_ADDR", image, "127.0.0.1:4317")):
                        want = "grpc"
                    elif port in {listen_port(c.setting(*a)) for a in grpc_ports.get(c.role, [])}:
                        want = "grpc"
                    elif c.role in ("query", "serve") and port == listen_port(c.setting("pg-addr", "CAIRN_PG_ADDR", image, "127.0.0.1:5433") if c.setting("pg-addr", "CAIRN_PG_ADDR", image, "127.0.0.1:5433") != "off" else "x:0"):
                        want = "postgresql"
                    else:
                        want = "http"
                    if proto != want:
                        fail(f"Service/{svc['metadata']['name']} port {p.get('name')}: appProtocol {proto}, not {want}")
                    if want in ("grpc", "http") and p.get("name") not in (want, f"{want}-otlp", "metrics", "otlp-http", "otlp-grpc"):
                        fail(f"Service/{svc['metadata']['name']} port {p['port']} is named {p.get('name')!r}, not {want!r}")
    # The collector Service carries OTLP gRPC and HTTP, the query Service the API (and pg).
    for role, need in (("collector", {4317, 4318}), ("query", {3200})):
        svcs = [s for s in b.of("Service") if s["metadata"]["name"].endswith("-" + role) or s["metadata"]["name"] == role]
        if (role == "collector" and any(r in roles for r in ("collector", "serve"))) or (role == "query" and any(r in roles for r in ("query", "serve"))):
            if not svcs:
                fail(f"no Service named …-{role}")
            ports = {p["port"] for s in svcs for p in s["spec"]["ports"]}
            if b.helm_values is None or (role == "collector" and b.helm_values.get("collector", {}).get("service", {}).get("grpcPort", 4317) == 4317):
                if not need <= ports:
                    fail(f"the {role} Service exposes {sorted(ports)}, not {sorted(need)}")
    # HorizontalPodAutoscalers target a collector or query workload that leaves replicas to them.
    for hpa in b.of("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = b.get(ref["kind"], ref["name"], b.namespace_of(hpa))
        if target is None or ref.get("apiVersion") != "apps/v1":
            fail(f"HorizontalPodAutoscaler/{hpa['metadata']['name']} targets {ref}, which is not in the manifests")
        tcs = by_workload[(target["kind"], target["metadata"]["name"])]
        if {c.role for c in tcs} - {"collector", "query"}:
            fail(f"HorizontalPodAutoscaler/{hpa['metadata']['name']} scales {target['kind']}/{ref['name']}, which runs {[c.role for c in tcs]}")
        if "replicas" in target["spec"]:
            fail(f"{target['kind']}/{ref['name']} sets replicas although an HPA scales it (each apply would reset it)")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            fail(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: minReplicas > maxReplicas")
        for m in hpa["spec"].get("metrics", []):
            res = m.get("resource", {})
            if res.get("target", {}).get("type") == "Utilization":
                for c in tcs:
                    if not c.spec.get("resources", {}).get("requests", {}).get(res["name"]):
                        fail(f"{c.name}: an HPA on {res['name']} utilisation needs a {res['name']} request")
    # PodDisruptionBudgets select workloads, and never block every eviction.
    for pdb in b.of("PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]
        ws = [w for w in b.of(*WORKLOAD_KINDS) if label_selector_matches(sel, w["spec"]["template"]["metadata"].get("labels", {}))]
        if not ws:
            fail(f"PodDisruptionBudget/{pdb['metadata']['name']} selects no workload")
        for w in ws:
            replicas = w["spec"].get("replicas")
            if "minAvailable" in pdb["spec"] and replicas is not None and pdb["spec"]["minAvailable"] >= replicas:
                fail(f"PodDisruptionBudget/{pdb['metadata']['name']} allows no eviction of {w['metadata']['name']}")
            if pdb["spec"].get("maxUnavailable") in (0, "0%"):
                fail(f"PodDisruptionBudget/{pdb['metadata']['name']} allows no eviction")
    # ServiceMonitors scrape /metrics on a port of the Services they select.
    for sm in b.of("ServiceMonitor"):
        svcs = [s for s in b.of("Service") if label_selector_matches(sm["spec"]["selector"], s["metadata"].get("labels", {}))]
        if not svcs:
            fail(f"ServiceMonitor/{sm['metadata']['name']} selects no Service")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("path", "/metrics") != "/metrics":
                fail(f"ServiceMonitor/{sm['metadata']['name']} scrapes {ep.get('path')}")
            for s in svcs:
                if ep.get("port") not in {p.get("name") for p in s["spec"]["ports"]}:
                    fail(f"ServiceMonitor/{sm['metadata']['name']}: Service/{s['metadata']['name']} has no port {ep.get('port')}")


def check_network_policies(b: Bundle, image: Image, cs: list[Container]) -> None:
    policies = b.of("NetworkPolicy")
    expected = b.helm_values is None or b.helm_values.get("networkPolicy", {}).get("enabled", True)
    if not expected:
        if policies:
            fail("NetworkPolicies rendered although networkPolicy.enabled is false")
        return
    for c in cs:
        labels = c.workload["spec"]["template"]["metadata"].get("labels", {})
        mine = [p for p in policies if b.namespace_of(p) == b.namespace_of(c.workload)
                and label_selector_matches(p["spec"]["podSelector"], labels)]
        if not mine:
            fail(f"{c.name}: no NetworkPolicy selects its pods (Cairn has no authentication yet)")
        declared = {p["containerPort"] for p in c.spec.get("ports", [])}
        allowed: set[int] = set()
        open_all = False
        for p in mine:
            if "Ingress" not in p["spec"].get("policyTypes", ["Ingress"]):
                continue
            for rule in p["spec"].get("ingress", []):
                if not rule.get("from"):
                    fail(f"NetworkPolicy/{p['metadata']['name']}: an ingress rule from anywhere")
                if not rule.get("ports"):
                    open_all = True
                for port in rule.get("ports", []):
                    allowed.add(container_port(c, port["port"]) if isinstance(port["port"], str) else port["port"])
        if open_all:
            fail(f"{c.name}: a NetworkPolicy admits every port")
        if allowed - declared:
            fail(f"{c.name}: NetworkPolicies admit ports {sorted(allowed - declared)} it does not listen on")
        if c.role == "executor":
            for flag, var, default in (("executor-addr", "CAIRN_EXECUTOR_ADDR", DEFAULT_EXECUTOR_ADDR),
                                       ("executor-grpc-addr", "CAIRN_EXECUTOR_GRPC_ADDR", DEFAULT_EXECUTOR_GRPC_ADDR)):
                port = listen_port(c.setting(flag, var, image, default))
                if port not in allowed:
                    fail(f"{c.name}: its NetworkPolicy closes {var}'s port {port} (the scheduler, queriers and executors call it)")
        for svc in b.of("Service"):
            if label_selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, labels) and svc["spec"].get("selector"):
                for sp in svc["spec"]["ports"]:
                    port = container_port(c, sp.get("targetPort", sp["port"]))
                    if port not in allowed:
                        fail(f"{c.name}: Service/{svc['metadata']['name']} port {sp['port']} is closed by its NetworkPolicy")
        egress_types = [p for p in mine if "Egress" in p["spec"].get("policyTypes", [])]
        if egress_types:
            rules = [r for p in egress_types for r in p["spec"].get("egress", [])]

            def reaches(port: int, proto: str = "TCP") -> bool:
                for r in rules:
                    ports = r.get("ports")
                    if not ports or any(p.get("port") == port and p.get("protocol", "TCP") == proto for p in ports):
                        return True
                return False

            if not reaches(53, "UDP") or not reaches(53, "TCP"):
                fail(f"{c.name}: egress allows no DNS (53/UDP and TCP)")
            needs_api = c.role == "compact" or (c.role in ("collector", "serve") and c.setting("kube", "CAIRN_KUBE", image, "auto") != "off")
            if needs_api and not reaches(443):
                fail(f"{c.name}: egress does not reach the API server on 443")
            # The Ballista cluster: queriers and executors call the scheduler, queriers and
            # executors fetch stage outputs from executors, the scheduler launches tasks.
            for s in (x for x in cs if x.role == "scheduler"):
                sched = listen_port(s.setting("scheduler-addr", "CAIRN_SCHEDULER_ADDR", image, DEFAULT_SCHEDULER_ADDR))
                callers = c.role == "executor" or (c.role == "query" and c.value("CAIRN_SCHEDULER", image))
                if callers and not reaches(sched):
                    fail(f"{c.name}: egress does not reach the scheduler on {sched}")
            for e in (x for x in cs if x.role == "executor"):
                flight = listen_port(e.setting("executor-addr", "CAIRN_EXECUTOR_ADDR", image, DEFAULT_EXECUTOR_ADDR))
                grpc = listen_port(e.setting("executor-grpc-addr", "CAIRN_EXECUTOR_GRPC_ADDR", image, DEFAULT_EXECUTOR_GRPC_ADDR))
                fetches = c.role == "executor" or (c.role == "query" and c.value("CAIRN_SCHEDULER", image))
                if fetches and not reaches(flight):
                    fail(f"{c.name}: egress does not reach the executors' Arrow Flight port {flight}")
                if c.role == "scheduler" and not reaches(grpc):
                    fail(f"{c.name}: egress does not reach the executors' task port {grpc}")
            store = c.setting("store", "CAIRN_STORE", image, "")
            if re.match(r"^(s3|gs|az)://", store):
                endpoint = c.value("AWS_ENDPOINT_URL", image)
                if endpoint:
                    m = re.match(r"^(https?)://[^/:]+(?::(\d+))?", endpoint)
                    port = int(m.group(2) or (80 if m.group(1) == "http" else 443))
                else:
                    port = 443
                if not reaches(port):
                    fail(f"{c.name}: egress does not reach the object store on port {port}")


def check_labels(b: Bundle, image: Image, cs: list[Container]) -> None:
    for d in b.docs:
        labels = d["metadata"].get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"):
            if key not in labels:
                fail(f"{d['kind']}/{d['metadata']['name']}: no label {key}")
        if b.helm_values is not None:
            for key in ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "helm.sh/chart"):
                if key not in labels:
                    fail(f"{d['kind']}/{d['metadata']['name']}: no label {key}")
    for w in b.of(*WORKLOAD_KINDS):
        sel = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in sel.items()):
            fail(f"{w['kind']}/{w['metadata']['name']}: the selector does not match the pod template's labels")
        if "app.kubernetes.io/version" in sel or "helm.sh/chart" in sel:
            fail(f"{w['kind']}/{w['metadata']['name']}: the selector names the version (immutable, upgrades would fail)")
    if b.helm_values is not None:
        meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
        for c in cs:
            tag = b.helm_values.get("image", {}).get("tag") or meta["appVersion"]
            digest = b.helm_values.get("image", {}).get("digest")
            if not digest and not c.spec["image"].endswith(":" + str(tag)):
                fail(f"{c.name}: image {c.spec['image']} is not tagged {tag}")
            ann = c.workload["spec"]["template"]["metadata"].get("annotations") or {}
            if b.helm_values.get("config") and "checksum/config" not in ann:
                fail(f"{c.name}: no checksum/config annotation: a config change would not roll the pods")


SEMANTIC_CHECKS = [check_security, check_listeners_and_probes, check_rbac, check_secrets_and_store,
                   check_storage_and_shutdown, check_memory, check_workload_objects,
                   check_network_policies, check_labels]


# ---------------------------------------------------------------------------------------------
# Runner


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, what: str, fn, *args) -> bool:
        try:
            fn(*args)
        except Failure as e:
            self.failed.append(what)
            print(f"FAIL {what}\n    {e}", flush=True)
            return False
        except Exception as e:  # a crash of a check is a failure too
            self.failed.append(what)
            print(f"FAIL {what}\n    {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            return False
        self.passed += 1
        print(f"ok   {what}", flush=True)
        return True


# Helm configurations beyond the files: each reaches branches the files leave alone.
REQUIRED = {"store": {"url": "s3://cairn-check/spans"}}
VARIANTS = {
    "variant: query autoscaling, any egress, config file, no pod enrichment": {
        "store": {"url": "s3://cairn-check/spans", "s3": {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "example"}},
        "query": {"autoscaling": {"enabled": True}},
        "networkPolicy": {"egress": {"allowAll": True}},
        "collector": {"kube": {"enabled": False}},
        "config": {"flush_interval": "2s", "compaction_interval": "5m"},
        "serviceMonitor": {"enabled": True},
    },
    "variant: single on S3, no Postgres, no NetworkPolicy, ServiceMonitor": {
        "mode": "single", "store": {"url": "s3://cairn-check/single"}, "pg": {"enabled": False},
        "networkPolicy": {"enabled": False}, "serviceMonitor": {"enabled": True},
    },
}
# Values that must be refused, and a word of the message that says why.
REFUSED = {
    "refused: Ballista in mode single": (
        {"mode": "single", "ballista": {"enabled": True}}, "ballista.enabled needs mode"),
    "refused: distributed without a bucket": ({}, "store.url is required"),
    "refused: grace period shorter than the drain": (
        {**REQUIRED, "collector": {"shutdownTimeout": "60s", "terminationGracePeriodSeconds": 30}}, "must exceed"),
    "refused: ack stored with a log volume": (
        {**REQUIRED, "collector": {"ack": "stored", "persistence": {"enabled": True}}}, "keeps no write-ahead log"),
    "refused: a misspelt key": ({**REQUIRED, "colector": {"replicas": 3}}, "colector"),
    "refused: an unknown association": (
        {**REQUIRED, "collector": {"kube": {"association": ["pod-label"]}}}, "association"),
}


def refused(values: dict, word: str) -> None:
    try:
        helm_render(values)
    except helm.HelmError as e:
        if word not in str(e):
            fail(f"refused, but the message does not say {word!r}: {e}")
        return
    fail("rendered although it must be refused")


# Breakages each semantic check must notice: (description, mutation of the docs).
def _first(docs, kind, pred=lambda d: True):
    return next(d for d in docs if d.get("kind") == kind and pred(d))


def _container(docs, role):
    for d in docs:
        if d.get("kind") in WORKLOAD_KINDS:
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c.get("args", [None])[0] == role:
                    return d, c
    raise KeyError(role)


def _env(c, name):
    return next(e for e in c["env"] if e["name"] == name)


MUTATIONS = {
    "a container may escalate privileges": lambda d: _container(d, "query")[1]["securityContext"].update(allowPrivilegeEscalation=True),
    "the readiness probe asks /health": lambda d: _container(d, "collector")[1]["readinessProbe"]["httpGet"].update(path="/health"),
    "the liveness probe asks the gRPC port": lambda d: _container(d, "collector")[1]["livenessProbe"]["httpGet"].update(port="grpc"),
    "the collector may delete pods": lambda d: _first(d, "ClusterRole")["rules"][0]["verbs"].append("delete"),
    "the collector may read secrets": lambda d: _first(d, "ClusterRole")["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
    "the compactor cannot update its Lease": lambda d: [r["verbs"].remove("update") for r in _first(d, "Role", lambda x: "lease" in x["metadata"]["name"])["rules"] if "update" in r["verbs"]],
    "the compactor runs without the lease": lambda d: _env(_container(d, "compact")[1], "CAIRN_COMPACTOR_LEASE").update(value="off"),
    "the lease identity is a literal": lambda d: _env(_container(d, "compact")[1], "CAIRN_LEASE_IDENTITY").update({"value": "me", "valueFrom": None}) or _env(_container(d, "compact")[1], "CAIRN_LEASE_IDENTITY").pop("valueFrom"),
    "a misspelt variable": lambda d: _container(d, "query")[1]["env"].append({"name": "CAIRN_QUERY_MEMROY", "value": "1GiB"}),
    "a flag the binary lacks": lambda d: _container(d, "query")[1]["args"].append("--no-such-flag"),
    "an unreadable value": lambda d: _env(_container(d, "collector")[1], "CAIRN_SHUTDOWN_TIMEOUT").update(value="soon"),
    "the Postgres password is a literal": lambda d: _env(_container(d, "query")[1], "CAIRN_PG_PASSWORD").update({"value": "hunter2"}) or _env(_container(d, "query")[1], "CAIRN_PG_PASSWORD").pop("valueFrom"),
    "Postgres on all interfaces without a password": lambda d: _container(d, "query")[1]["env"].remove(_env(_container(d, "query")[1], "CAIRN_PG_PASSWORD")),
    "the grace period is shorter than the drain": lambda d: _container(d, "collector")[0]["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20),
    "the HPA targets the compactor": lambda d: _first(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(kind="Deployment", name=_container(d, "compact")[0]["metadata"]["name"]),
    "the HPA'd workload sets replicas": lambda d: _container(d, "collector")[0]["spec"].update(replicas=3),
    "the log is on the read-only root": lambda d: _env(_container(d, "collector")[1], "CAIRN_WAL_DIR").update(value="/var/wal"),
    "query memory above the limit": lambda d: _env(_container(d, "query")[1], "CAIRN_QUERY_MEMORY").update(value="8GiB"),
    "the collector listens on loopback": lambda d: _env(_container(d, "collector")[1], "CAIRN_OTLP_GRPC_ADDR").update(value="127.0.0.1:4317"),
    "the NetworkPolicy closes the OTLP port": lambda d: _first(d, "NetworkPolicy", lambda x: x["metadata"]["name"].endswith("-collector"))["spec"]["ingress"][0]["ports"].pop(0),
    "Service links are on": lambda d: _container(d, "query")[0]["spec"]["template"]["spec"].pop("enableServiceLinks"),
    "a Deployment has no schema (wrong apiVersion)": lambda d: _container(d, "query")[0].update(apiVersion="apps/v1beta9"),
}


# Breakages of the Ballista example (examples/ballista.yaml) each check must notice.
BALLISTA_MUTATIONS = {
    "two schedulers": lambda d: _container(d, "scheduler")[0]["spec"].update(replicas=2),
    "executors cannot reach each other": lambda d: _first(d, "NetworkPolicy", lambda x: x["metadata"]["name"].endswith("-executor"))["spec"]["egress"].pop(-1),
    "the executors' work directory on the read-only root": lambda d: _env(_container(d, "executor")[1], "CAIRN_EXECUTOR_WORK_DIR").update(value="/var/work"),
    "executor memory above the limit": lambda d: _env(_container(d, "executor")[1], "CAIRN_EXECUTOR_MEMORY").update(value="64GiB"),
    "the executor listens on loopback": lambda d: _env(_container(d, "executor")[1], "CAIRN_EXECUTOR_ADDR").update(value="127.0.0.1:50051"),
    "the scheduler mounts a token": lambda d: _container(d, "scheduler")[0]["spec"]["template"]["spec"].update(automountServiceAccountToken=True),
}


def all_failures(docs: list[dict], values: dict, image: Image, helps: dict[str, Help],
                 binary: Path) -> set[str]:
    """The failure of every check over a rendering (each check stops at its first)."""
    b = Bundle("copy", docs, values)
    failures = set()
    try:
        cs = b.containers(image)
    except Failure as e:
        return {str(e)}
    checks = [lambda: validate_schemas(b.docs), lambda: check_flags(b, image, cs, helps),
              lambda: run_config(b, image, cs, binary)]
    checks += [lambda fn=fn: fn(b, image, cs) for fn in SEMANTIC_CHECKS]
    for check in checks:
        try:
            check()
        except Failure as e:
            failures.add(str(e))
    return failures


def main() -> int:
    r = Runner()
    binary = binary_path()
    print(f"binary: {binary}")
    helps: dict[str, Help] = {}
    if not r.check(f"`cairn <role> --help` of {binary}", lambda: helps.update(read_help(binary))):
        print("\nthe flag checks need the binary; stopping")
        print(f"{r.passed} passed, {len(r.failed)} failed")
        return 1
    image_box: list[Image] = []
    r.check("Dockerfile parses", lambda: image_box.append(read_dockerfile()))
    if not image_box:
        print(f"{r.passed} passed, {len(r.failed)} failed")
        return 1
    image = image_box[0]
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r.check("Dockerfile" + (" (hadolint)" if hadolint else " (hadolint not installed)"),
            check_dockerfile, image, helps, hadolint)

    with open(CHART / "values.yaml") as f:
        defaults = yaml.safe_load(f)
    configs: dict[str, dict] = {"helm: defaults (+ store.url)": REQUIRED}
    for path in sorted((CHART / "examples").glob("*.yaml")):
        with open(path) as f:
            configs[f"helm: examples/{path.name}"] = yaml.safe_load(f) or {}
    configs.update({f"helm: {k}": v for k, v in VARIANTS.items()})

    bundles: list[Bundle] = []
    for name, values in configs.items():
        docs: list[dict] = []
        ok = r.check(f"{name}: helm lint", helm_lint, values)
        ok = r.check(f"{name}: helm template", lambda: docs.extend(helm_render(values))) and ok
        if docs:
            bundles.append(Bundle(name, docs, deep_merge(defaults, values)))
    for name, (values, word) in REFUSED.items():
        r.check(f"helm: {name}", refused, values, word)

    kdirs = [KUSTOMIZE / "base"] + sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
    for d in kdirs:
        docs = []
        rel = d.relative_to(ROOT)
        if r.check(f"kustomize: {rel}: kubectl kustomize", lambda: docs.extend(kustomize_render(d))):
            bundles.append(Bundle(f"kustomize: {rel}", docs, None))

    def doc_objects() -> None:
        blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs/kubernetes.md").read_text(), re.S)
        objects = [d for blk in blocks for d in yaml.safe_load_all(blk)
                   if isinstance(d, dict) and "apiVersion" in d and "kind" in d]
        if not objects:
            fail("docs/kubernetes.md shows no Kubernetes object")
        validate_schemas(objects)
    r.check("docs/kubernetes.md: its Kubernetes objects validate", doc_objects)

    for b in bundles:
        r.check(f"{b.name}: kubernetes-validate --strict -k {KUBE_VERSION} ({len(b.docs)} objects)", validate_schemas, b.docs)
        cs: list[Container] = []
        if not r.check(f"{b.name}: containers run a Cairn role", lambda: cs.extend(b.containers(image))):
            continue
        r.check(f"{b.name}: flags and variables are the binary's", check_flags, b, image, cs, helps)
        r.check(f"{b.name}: `cairn config` reads every container's settings", run_config, b, image, cs, binary)
        for fn in SEMANTIC_CHECKS:
            r.check(f"{b.name}: {fn.__name__.removeprefix('check_').replace('_', ' ')}", fn, b, image, cs)

    # Every breakage must be caught by some check, on a copy of the default rendering: a
    # failure that the unbroken rendering does not have.
    for prefix, mutations in (("helm: defaults", MUTATIONS), ("helm: examples/ballista.yaml", BALLISTA_MUTATIONS)):
        base = next((b for b in bundles if b.name.startswith(prefix)), None)
        if base is None:
            r.check(f"breakages of {prefix}", fail, "no such rendering")
            continue
        baseline = all_failures(base.docs, base.helm_values, image, helps, binary)
        for what, mutate in mutations.items():
            def caught(mutate=mutate, base=base, baseline=baseline) -> None:
                docs = copy.deepcopy(base.docs)
                mutate(docs)
                new = all_failures(docs, base.helm_values, image, helps, binary) - baseline
                if not new:
                    fail("no check noticed it" + (" (beside the unbroken rendering's own failures)" if baseline else ""))
            r.check(f"breakage noticed: {what}", caught)

    print()
    if r.failed:
        print("failed:\n  " + "\n  ".join(r.failed))
    print(f"{r.passed} passed, {len(r.failed)} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
