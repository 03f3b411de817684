#!/usr/bin/env python3
"""Fetch, start and stop real Elasticsearch and OpenSearch nodes for the test suite.

The servers are the official "integ-test-zip" distributions that Elastic and OpenSearch publish
to Maven Central.  The versions are pinned in ``scripts/servers.json`` (read by this script, by
the pytest fixtures and by CI).  Everything here uses the standard library only, so the script
runs before any virtual environment exists.

Usage (``python scripts/nodes.py --help`` for all options)::

    python scripts/nodes.py fetch --all            # download (once) and unpack every pinned server
    python scripts/nodes.py start                  # Elasticsearch 9, prints the URL once healthy
    python scripts/nodes.py start --major 8        # Elasticsearch 8.19
    python scripts/nodes.py start --kind opensearch
    python scripts/nodes.py start --nodes 3        # a 3-node cluster on loopback
    python scripts/nodes.py start --tiny-queue     # write pool of 1 thread, queue of 1 (real 429s)
    python scripts/nodes.py start --secured        # TLS on HTTP, a user with a password, API keys
    python scripts/nodes.py start --kerberos       # secured + a Kerberos realm and its own KDC
    python scripts/nodes.py start --kind opensearch --secured   # security plugin, TLS, users
    python scripts/nodes.py status
    python scripts/nodes.py restart es9 --node 0   # same data folder, same ports
    python scripts/nodes.py stop es9 [--purge]     # or: stop --all

Layout (root: ``$ECSMH_SERVERS_DIR``, default ``/var/tmp/ecs-metrics-handler/servers``)::

    dist/<kind>-<version>/                   unpacked distribution (shared, read-only use)
    clusters/<name>/state.json               ports, pids, options of one cluster
    clusters/<name>/certs/ca.crt             CA of a secured cluster (for clients)
    clusters/<name>/node-<i>/config|data|logs|tmp
    clusters/<name>/node-<i>/logs/console.log   stdout/stderr of the node (all starts)
    clusters/<name>/kdc/                     the MIT KDC of a Kerberos cluster (scripts/kdc.py)

Both distributions refuse to run as root: when run as root the nodes run as the system user
``$ECSMH_SERVER_USER`` (default ``ecsmh``), created on first use.

Environment:
    ECSMH_SERVERS_DIR   root folder (see above)
    ECSMH_SERVER_USER   system user for the nodes when run as root (default ``ecsmh``)
    ECSMH_HEAP          JVM heap of each node (default ``512m``)
    ECSMH_M2_REPO       local Maven repository (default ``~/.m2/repository``)
    ECSMH_START_TIMEOUT seconds a start may take to become healthy (default 180)
    ES_JAVA_HOME        JDK for Elasticsearch (else found from JAVA_HOME, PATH, /usr/lib/jvm)
    OPENSEARCH_JAVA_HOME  JDK for OpenSearch (same search)
    ECSMH_JDK_DIRS      colon-separated folders holding JDKs, searched for a newer JDK when the
                        default one is too old (default ``/usr/lib/jvm:/usr/java:/opt/java``)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SCRIPTS_DIR = Path(__file__).resolve().parent
PINS_FILE = SCRIPTS_DIR / "servers.json"
DEFAULT_ROOT = "/var/tmp/ecs-metrics-handler/servers"
DEFAULT_USER = "ecsmh"
KINDS = ("elasticsearch", "opensearch")
SHORT = {"elasticsearch": "es", "opensearch": "os"}
DEFAULT_USERNAME = "ecsmh_test"
DEFAULT_PASSWORD = "ecsmh-test-password"
START_TIMEOUT = float(os.environ.get("ECSMH_START_TIMEOUT") or 180)
STOP_GRACE = 20.0


class NodesError(RuntimeError):
    """A server could not be fetched, configured or started.

    ``str(err)`` is a one-line reason, fit for a skip message; ``err.detail`` holds extra lines
    (the tail of a log) or ``""``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def log(msg: str) -> None:
    print(f"[nodes] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# pins


@dataclasses.dataclass(frozen=True)
class Pin:
    kind: str
    major: int
    version: str
    coordinates: str
    java_min: int

    @property
    def group_id(self) -> str:
        return self.coordinates.split(":")[0]

    @property
    def artifact_id(self) -> str:
        return self.coordinates.split(":")[1]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version}"


def load_pins(path: Path = PINS_FILE) -> dict[str, dict[int, Pin]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    pins: dict[str, dict[int, Pin]] = {}
    for kind in KINDS:
        for major, entry in raw.get(kind, {}).items():
            version = entry["version"]
            pins.setdefault(kind, {})[int(major)] = Pin(
                kind=kind,
                major=int(major),
                version=version,
                coordinates=entry["coordinates"].format(version=version),
                java_min=int(entry["java_min"]),
            )
    return pins


def get_pin(kind: str = "elasticsearch", major: int | None = None) -> Pin:
    """The pinned server of ``kind``; ``major`` None means the newest pinned major."""
    if kind not in KINDS:
        raise NodesError(f"unknown server kind {kind!r} (expected one of {', '.join(KINDS)})")
    by_major = load_pins().get(kind, {})
    if not by_major:
        raise NodesError(f"no {kind} version pinned in {PINS_FILE}")
    if major is None:
        major = max(by_major)
    if major not in by_major:
        known = ", ".join(str(m) for m in sorted(by_major))
        raise NodesError(f"no {kind} {major}.x pinned in {PINS_FILE} (pinned majors: {known})")
    return by_major[major]


# --------------------------------------------------------------------------------------------
# paths, user


def servers_root() -> Path:
    return Path(os.environ.get("ECSMH_SERVERS_DIR") or DEFAULT_ROOT)


def clusters_dir() -> Path:
    return servers_root() / "clusters"


def m2_repo() -> Path:
    env = os.environ.get("ECSMH_M2_REPO")
    return Path(env) if env else Path.home() / ".m2" / "repository"


@contextlib.contextmanager
def root_lock() -> Iterator[None]:
    """Serialise fetch/unpack/user creation between concurrent runs (an flock on the root)."""
    root = servers_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclasses.dataclass(frozen=True)
class RunAs:
    """Who the nodes run as: a system user when we are root, else ourselves."""

    name: str
    uid: int
    gid: int
    switch: bool  # True when Popen must switch user


def run_as() -> RunAs:
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, False)
    name = os.environ.get("ECSMH_SERVER_USER") or DEFAULT_USER
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        pw = _create_user(name)
    if pw.pw_uid == 0:
        raise NodesError(f"ECSMH_SERVER_USER={name} is root; Elasticsearch refuses to run as root")
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, True)


def _create_user(name: str) -> pwd.struct_passwd:
    log(f"creating system user {name!r} to run the servers (they refuse to run as root)")
    nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    attempts: list[list[str]] = []
    if shutil.which("useradd"):
        attempts.append(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                nologin,
                name,
            ]
        )
    if shutil.which("adduser"):
        attempts.append(["adduser", "--system", "--group", "--no-create-home", name])
    errors = []
    for cmd in attempts:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            break
        errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise NodesError(
            f"could not create the system user {name!r} for the servers "
            f"({'; '.join(errors) or 'neither useradd nor adduser found'})"
        ) from None


def chown_tree(path: Path, who: RunAs) -> None:
    if not who.switch:
        return
    os.chown(path, who.uid, who.gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(dirpath, name), who.uid, who.gid)


# --------------------------------------------------------------------------------------------
# java


def _java_major_of_home(home: Path) -> int | None:
    release = home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if match:
            return _parse_java_major(match.group(1))
    java = home / "bin" / "java"
    if not os.access(java, os.X_OK):
        return None
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "([^"]+)"', out)
    return _parse_java_major(match.group(1)) if match else None


def _parse_java_major(version: str) -> int | None:
    parts = version.split(".")
    try:
        major = int(parts[0])
        if major == 1 and len(parts) > 1:  # 1.8.0_x
            major = int(parts[1])
    except ValueError:
        return None
    return major


def _home_of_java_binary(java: str) -> Path:
    return Path(os.path.realpath(java)).parent.parent


def find_java(kind: str, java_min: int) -> tuple[Path, int]:
    """Find a JDK for ``kind`` with a major version >= ``java_min``.

    Order: the product's own variable (ES_JAVA_HOME / OPENSEARCH_JAVA_HOME) if set; else the
    default Java (JAVA_HOME, or ``java`` on PATH) when new enough; else, when a default Java
    exists but is too old, the oldest sufficient JDK under ``ECSMH_JDK_DIRS``.  With no Java at
    all (no JAVA_HOME, no ``java`` on PATH) this fails: that is how a missing Java is reported.
    """
    var = "ES_JAVA_HOME" if kind == "elasticsearch" else "OPENSEARCH_JAVA_HOME"
    need = f"{kind} needs a JDK {java_min}+"
    explicit = os.environ.get(var)
    if explicit:
        major = _java_major_of_home(Path(explicit))
        if major is None:
            raise NodesError(f"{var}={explicit} is not a JDK ({need})")
        if major < java_min:
            raise NodesError(f"{var}={explicit} is Java {major}; {need}")
        return Path(explicit), major
    default: Path | None = None
    if os.environ.get("JAVA_HOME") and (Path(os.environ["JAVA_HOME"]) / "bin" / "java").exists():
        default = Path(os.environ["JAVA_HOME"])
    elif shutil.which("java"):
        default = _home_of_java_binary(shutil.which("java") or "java")
    if default is None:
        raise NodesError(
            f"Java not found (no JAVA_HOME, no `java` on PATH): {need}; "
            f"install one (e.g. apt-get install openjdk-17-jdk-headless) or set {var}"
        )
    default_major = _java_major_of_home(default)
    if default_major is not None and default_major >= java_min:
        return default, default_major
    candidates: list[tuple[int, str, Path]] = []
    dirs = os.environ.get("ECSMH_JDK_DIRS", "/usr/lib/jvm:/usr/java:/opt/java")
    for base in filter(None, dirs.split(":")):
        base_path = Path(base)
        if not base_path.is_dir():
            continue
        for home in sorted(base_path.iterdir()):
            if home.is_symlink() or not (home / "bin" / "java").exists():
                continue
            major = _java_major_of_home(home)
            if major is not None and major >= java_min:
                candidates.append((major, str(home), home))
    if not candidates:
        raise NodesError(
            f"no JDK {java_min}+ found: the default Java ({default}) is Java {default_major} and "
            f"none under {dirs}; {need}: install one or set {var}"
        )
    major, _, home = min(candidates)
    return home, major


# --------------------------------------------------------------------------------------------
# fetch and unpack


def artifact_path(pin: Pin) -> Path:
    return (
        m2_repo().joinpath(*pin.group_id.split("."))
        / pin.artifact_id
        / pin.version
        / f"{pin.artifact_id}-{pin.version}.zip"
    )


def dist_home(pin: Pin) -> Path:
    return servers_root() / "dist" / f"{pin.kind}-{pin.version}"


def fetch(pin: Pin) -> Path:
    """Return the path of the pinned zip in the local Maven repository, fetching it if needed."""
    path = artifact_path(pin)
    if path.is_file():
        return path
    mvn = shutil.which("mvn")
    if not mvn:
        raise NodesError(
            f"Maven (mvn) not found on PATH: needed once to fetch {pin.coordinates} from Maven "
            "Central (install it, e.g. apt-get install maven)"
        )
    log(f"fetching {pin.coordinates} from Maven Central ...")
    cmd = [
        mvn,
        "-q",
        "-B",
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:get",
        "-Dtransitive=false",
        f"-Dartifact={pin.coordinates}",
    ]
    if os.environ.get("ECSMH_M2_REPO"):
        cmd.append(f"-Dmaven.repo.local={os.environ['ECSMH_M2_REPO']}")
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not path.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise NodesError(
            f"could not fetch {pin.coordinates} from Maven Central (mvn exit {proc.returncode})",
            tail,
        )
    log(
        f"fetched {path.name} ({path.stat().st_size / 1e6:.0f} MB) in "
        f"{time.monotonic() - started:.0f} s"
    )
    return path


def unpack(pin: Pin, who: RunAs | None = None) -> Path:
    """Unpack the pinned zip (once) under ``<root>/dist`` and return the distribution's home."""
    home = dist_home(pin)
    marker = home / ".unpacked"
    if marker.is_file():
        return home
    with root_lock():
        if marker.is_file():
            return home
        zip_path = fetch(pin)
        who = who or run_as()
        tmp = home.with_name(home.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"unpacking {zip_path.name} into {home}")
        with zipfile.ZipFile(zip_path) as zf:
            top = None
            for info in zf.infolist():
                top = top or info.filename.split("/")[0]
                target = zf.extract(info, tmp)
                mode = (info.external_attr >> 16) & 0o7777
                if mode:
                    os.chmod(target, mode)
        inner = tmp / (top or "")
        inner.rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
        # the whole path must be traversable by the server user
        for parent in [servers_root(), servers_root() / "dist"]:
            parent.chmod(parent.stat().st_mode | 0o755)
        chown_tree(home, who)
        marker.write_text(pin.coordinates + "\n")
    return home


SHIM_NAME = "ecsmh-analysis-shim"
SHIM_SOURCE = SCRIPTS_DIR / "es-analysis-shim" / "AnalysisShimPlugin.java"


def install_analysis_shim(pin: Pin, home: Path, java_home: Path, who: RunAs) -> str | None:
    """Compile and install the analysis shim plugin into an Elasticsearch distribution (once).

    The `.security` index (API keys) needs analysis components of the analysis-common module,
    which the integ-test distribution lacks; see scripts/es-analysis-shim/.  Returns None when
    installed, else the reason it could not be (then API keys are unavailable).
    """
    if pin.kind != "elasticsearch":
        return None
    target = home / "plugins" / SHIM_NAME
    if (target / "plugin-descriptor.properties").is_file():
        return None
    javac = java_home / "bin" / "javac"
    if not os.access(javac, os.X_OK):
        javac = Path(shutil.which("javac") or "/nonexistent/javac")
    if not os.access(javac, os.X_OK):
        return f"no javac in {java_home} nor on PATH (a JDK, not a JRE, is needed for API keys)"
    with root_lock():
        if (target / "plugin-descriptor.properties").is_file():
            return None
        build = servers_root() / "dist" / f".{SHIM_NAME}-{pin.version}.build"
        shutil.rmtree(build, ignore_errors=True)
        (build / "classes").mkdir(parents=True)
        proc = subprocess.run(
            [
                str(javac),
                "--release",
                "17",
                "-nowarn",
                "-proc:none",
                "-cp",
                f"{home}/lib/*",
                "-d",
                str(build / "classes"),
                str(SHIM_SOURCE),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            return f"compiling {SHIM_SOURCE.name} failed: {proc.stderr.strip()[-500:]}"
        staged = build / SHIM_NAME
        staged.mkdir()
        with zipfile.ZipFile(staged / f"{SHIM_NAME}.jar", "w", zipfile.ZIP_DEFLATED) as jar:
            for path in sorted((build / "classes").rglob("*.class")):
                jar.write(path, path.relative_to(build / "classes").as_posix())
        (staged / "plugin-descriptor.properties").write_text(
            "description=analysis components the security index needs (test distribution only)\n"
            f"version={pin.version}\nname={SHIM_NAME}\n"
            "classname=org.ecsmetricshandler.testing.AnalysisShimPlugin\n"
            f"java.version=17\nelasticsearch.version={pin.version}\n"
        )
        staged.rename(target)
        shutil.rmtree(build, ignore_errors=True)
        chown_tree(target, who)
        log(f"installed {SHIM_NAME} into {home / 'plugins'} (analysis for the security index)")
    return None


# --------------------------------------------------------------------------------------------
# small helpers: ports, processes, http


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def port_in_use(port: int) -> bool:
    """True when something listens on (or holds) 127.0.0.1:``port``; TIME_WAIT leftovers of a
    stopped node do not count (the servers bind with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], pgrp [2], start [19])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _exiting_threads(pid: int) -> bool:
    """True while a zombie thread-group leader still has threads tearing down (they hold the
    process's sockets until the last one is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if raw[raw.rindex(")") + 2 :].split()[0] not in ("Z", "X"):
            return True
    return False


def group_pids(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (zombies with no thread left excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if (
            fields
            and int(fields[2]) == pgid
            and (fields[0] not in ("Z", "X") or _exiting_threads(int(entry)))
        ):
            pids.append(int(entry))
    return pids


def rss_of(pids: Sequence[int]) -> int:
    """Resident memory in bytes of ``pids`` together (VmRSS)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


def http(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    auth: tuple[str, str] | None = None,
    api_key: str | None = None,
    ca_file: str | None = None,
    timeout: float = 30.0,
    content_type: str = "application/json",
) -> Response:
    """One HTTP request with the standard library.  ``body``: bytes, str or a JSON-able object.

    Never raises for an HTTP status; raises ``OSError`` (URLError) when nothing answers.
    """
    data: bytes | None
    if body is None or isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    if api_key:
        req.add_header("Authorization", f"ApiKey {api_key}")
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return Response(resp.status, resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as err:
        return Response(err.code, err.read(), dict(err.headers or {}))


# --------------------------------------------------------------------------------------------
# certificates (openssl CLI, so that this script stays stdlib-only)


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA and a node certificate for 127.0.0.1/localhost, PEM, under ``folder``."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise NodesError("openssl not found on PATH: needed to make the TLS certificates")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "node.key", folder / "node.csr", folder / "node.crt"
    ext = folder / "node.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    steps = [
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=ecs-metrics-handler test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
        [
            openssl,
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_crt),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NodesError(f"openssl failed making test certificates: {proc.stderr.strip()}")
    for path in (ca_key, key):
        path.chmod(0o640)
    return {"ca": ca_crt, "key": key, "cert": crt}


# --------------------------------------------------------------------------------------------
# clusters


@dataclasses.dataclass
class Node:
    index: int
    name: str
    http_port: int
    transport_port: int
    dir: Path
    pid: int | None = None
    pid_start: int | None = None

    @property
    def config_dir(self) -> Path:
        return self.dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "console.log"

    def alive_pids(self) -> list[int]:
        if self.pid is None:
            return []
        if proc_start_time(self.pid) != self.pid_start:
            # the session leader is gone (or its pid was reused): look for orphans of the group
            others = group_pids(self.pid)
            return others if proc_start_time(self.pid) is None else []
        return group_pids(self.pid)


class Cluster:
    """One Elasticsearch/OpenSearch cluster of ``len(nodes)`` nodes on loopback.

    The handle used by the scripts and by the pytest fixtures.  Node indexes ``i`` count from 0.
    Not thread-safe: drive one cluster from one thread.
    """

    def __init__(self, state: dict[str, Any], directory: Path) -> None:
        self.dir = directory
        self.name: str = state["name"]
        self.kind: str = state["kind"]
        self.version: str = state["version"]
        self.major: int = int(state["major"])
        self.secured: bool = bool(state.get("secured"))
        self.tiny_queue: bool = bool(state.get("tiny_queue"))
        self.owner_pid: int | None = state.get("owner_pid")
        self.owner_start: int | None = state.get("owner_start")
        self.username: str | None = state.get("username")
        self.password: str | None = state.get("password")
        self.java_home: str = state["java_home"]
        self.home: str = state["home"]
        self.heap: str = state.get("heap", "512m")
        self.api_keys_problem: str | None = state.get("api_keys_problem")
        kdc_state = state.get("kerberos")
        self.kdc: Any = kerberos_module().Kdc.from_state(kdc_state) if kdc_state else None
        self.nodes = [
            Node(
                index=n["index"],
                name=n["name"],
                http_port=n["http_port"],
                transport_port=n["transport_port"],
                dir=Path(n["dir"]),
                pid=n.get("pid"),
                pid_start=n.get("pid_start"),
            )
            for n in state["nodes"]
        ]
        self.start_seconds: dict[int, float] = {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # ---- creation / persistence

    @classmethod
    def create(
        cls,
        kind: str = "elasticsearch",
        major: int | None = None,
        *,
        nodes: int = 1,
        tiny_queue: bool = False,
        secured: bool = False,
        kerberos: bool = False,
        name: str | None = None,
        owner_pid: int | None = None,
    ) -> Cluster:
        """Fetch/unpack if needed, check Java, write the configuration. Does not start.

        ``kerberos`` (implies ``secured``): a Kerberos realm backed by a KDC of its own, see
        :meth:`_configure_kerberos`. ``secured`` OpenSearch: the pinned ``opensearch_secured``
        version with its security plugin.
        """
        if kerberos and kind != "elasticsearch":
            raise NodesError("--kerberos is supported for Elasticsearch only")
        secured = secured or kerberos
        os_security = secured and kind == "opensearch"
        pin, os_plugin = secured_os_pins() if os_security else (get_pin(kind, major), None)
        if nodes < 1:
            raise NodesError("a cluster needs at least one node")
        java_home, _ = find_java(kind, pin.java_min)  # first: cheapest check, clearest message
        who = run_as()
        home = unpack(pin, who)
        if os_plugin is not None:
            install_os_security_plugin(os_plugin, home, java_home, who)
        shim_problem = install_analysis_shim(pin, home, java_home, who)
        if shim_problem:
            log(f"API keys will be unavailable: {shim_problem}")
        name = name or default_name(pin, nodes, tiny_queue, secured, kerberos)
        directory = clusters_dir() / name
        if (directory / "state.json").exists():
            raise NodesError(f"cluster {name!r} already exists in {directory}")
        if kerberos:
            kerberos_module().check_tools()  # before any work: name the missing package
        directory.mkdir(parents=True)
        for parent in (servers_root(), clusters_dir()):
            parent.chmod(parent.stat().st_mode | 0o755)
        ports = free_ports(2 * nodes)
        state: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "version": pin.version,
            "major": pin.major,
            "secured": secured,
            "tiny_queue": tiny_queue,
            "owner_pid": owner_pid,
            "owner_start": proc_start_time(owner_pid) if owner_pid else None,
            "java_home": str(java_home),
            "home": str(home),
            "heap": os.environ.get("ECSMH_HEAP") or "512m",
            "api_keys_problem": shim_problem,
            "kerberos": {"folder": str(directory / "kdc")} if kerberos else None,
            "username": DEFAULT_USERNAME if secured else None,
            "password": DEFAULT_PASSWORD if secured else None,
            "nodes": [
                {
                    "index": i,
                    "name": f"{name}-{i}",
                    "http_port": ports[2 * i],
                    "transport_port": ports[2 * i + 1],
                    "dir": str(directory / f"node-{i}"),
                }
                for i in range(nodes)
            ],
        }
        cluster = cls(state, directory)
        try:
            cluster._configure(who)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        cluster.save()
        return cluster

    @classmethod
    def load(cls, name: str) -> Cluster:
        directory = clusters_dir() / name
        try:
            state = json.loads((directory / "state.json").read_text())
        except FileNotFoundError:
            raise NodesError(f"no cluster named {name!r} under {clusters_dir()}") from None
        return cls(state, directory)

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "major": self.major,
            "secured": self.secured,
            "tiny_queue": self.tiny_queue,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "java_home": self.java_home,
            "home": self.home,
            "heap": self.heap,
            "api_keys_problem": self.api_keys_problem,
            "kerberos": self.kdc.state() if self.kdc is not None else None,
            "username": self.username,
            "password": self.password,
            "url": self.url,
            "urls": self.urls,
            "ca_file": self.ca_file,
            "nodes": [
                {
                    "index": n.index,
                    "name": n.name,
                    "http_port": n.http_port,
                    "transport_port": n.transport_port,
                    "dir": str(n.dir),
                    "pid": n.pid,
                    "pid_start": n.pid_start,
                    "log_file": str(n.log_file),
                }
                for n in self.nodes
            ],
        }

    def save(self) -> None:
        if not self.dir.is_dir():  # destroyed
            return
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.state(), indent=2) + "\n")
        tmp.replace(self.dir / "state.json")

    def _configure(self, who: RunAs) -> None:
        home = Path(self.home)
        certs = make_certs(self.dir / "certs") if self.secured else None
        if self.kdc is not None:
            try:
                self.kdc.create()
            except kerberos_module().KdcError as err:
                raise NodesError(str(err), err.detail) from None
        for node in self.nodes:
            for sub in ("data", "logs", "tmp"):
                (node.dir / sub).mkdir(parents=True, exist_ok=True)
            shutil.copytree(home / "config", node.config_dir)
            if certs:
                (node.config_dir / "certs").mkdir()
                for key in ("ca", "key", "cert"):
                    shutil.copy2(certs[key], node.config_dir / "certs" / certs[key].name)
            if self.kdc is not None:
                self._configure_kerberos(node)
            settings = self._settings(node)
            yml = "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
            config_name = "elasticsearch.yml" if self.kind == "elasticsearch" else "opensearch.yml"
            (node.config_dir / config_name).write_text(
                "# written by scripts/nodes.py; see the cluster's state.json\n" + yml
            )
        if self.secured and self.kind == "opensearch":
            configure_os_security(self)
        chown_tree(self.dir, who)
        if self.secured and self.kind == "elasticsearch":
            self._add_user(who)

    def _settings(self, node: Node) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "cluster.name": self.name,
            "node.name": node.name,
            "network.host": "127.0.0.1",
            "http.port": node.http_port,
            "transport.port": node.transport_port,
            "path.data": str(node.data_dir),
            "path.logs": str(node.logs_dir),
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "node.store.allow_mmap": False,
            "action.destructive_requires_name": False,
        }
        if len(self.nodes) == 1:
            settings["discovery.type"] = "single-node"
        else:
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{n.transport_port}" for n in self.nodes]
            settings["cluster.initial_master_nodes"] = [n.name for n in self.nodes]
        if self.tiny_queue:  # a constrained node: 429s under load, 413 over 1 MiB
            settings["thread_pool.write.size"] = 1
            settings["thread_pool.write.queue_size"] = 1
            settings["http.max_content_length"] = "1mb"
        if self.kind == "opensearch" and self.secured:
            settings.update(os_security_settings())
        if self.kind == "elasticsearch":
            settings["xpack.security.enabled"] = self.secured
            if self.secured:
                for layer in ("http", "transport"):
                    prefix = f"xpack.security.{layer}.ssl"
                    settings[f"{prefix}.enabled"] = True
                    settings[f"{prefix}.key"] = "certs/node.key"
                    settings[f"{prefix}.certificate"] = "certs/node.crt"
                    settings[f"{prefix}.certificate_authorities"] = ["certs/ca.crt"]
                settings["xpack.security.transport.ssl.verification_mode"] = "certificate"
                settings["xpack.security.authc.api_key.enabled"] = True
            if self.kdc is not None:
                settings.update(self._kerberos_settings())
        return settings

    # ---- Kerberos (a secured Elasticsearch cluster with its own KDC; scripts/kdc.py)

    def _configure_kerberos(self, node: Node) -> None:
        """The service keytab and krb5.conf in the node's config dir, and the JVM options."""
        folder = node.config_dir / "kerberos"
        folder.mkdir()
        shutil.copy2(self.kdc.service_keytab, folder / "http.keytab")
        shutil.copy2(self.kdc.krb5_conf, folder / "krb5.conf")
        (node.config_dir / "jvm.options.d").mkdir(exist_ok=True)
        (node.config_dir / "jvm.options.d" / "kerberos.options").write_text(
            f"-Djava.security.krb5.conf={folder / 'krb5.conf'}\n"
            "-Dsun.security.krb5.disableReferrals=true\n"
        )

    def _kerberos_settings(self) -> dict[str, Any]:
        """Realms: file and native first (the admin user), then Kerberos; a trial licence
        (the Kerberos realm needs platinum or trial; the test distribution grants a trial)."""
        realm = "xpack.security.authc.realms"
        return {
            "xpack.license.self_generated.type": "trial",
            f"{realm}.file.file1.order": 0,
            f"{realm}.native.native1.order": 1,
            f"{realm}.kerberos.kerb1.order": 2,
            f"{realm}.kerberos.kerb1.keytab.path": "kerberos/http.keytab",
            f"{realm}.kerberos.kerb1.remove_realm_name": False,
        }

    @property
    def kerberos(self) -> bool:
        return self.kdc is not None

    @property
    def kerberos_urls(self) -> list[str]:
        """The node URLs by the name of the service principal (``https://localhost:<port>``):
        a Kerberos client asks for a ticket to ``HTTP/<host of the URL>``."""
        host = kerberos_module().SERVICE_HOST
        return [f"{self.scheme}://{host}:{n.http_port}" for n in self.nodes]

    def map_principal(self, principal: str, roles: Sequence[str], name: str | None = None) -> None:
        """Give the Kerberos ``principal`` (``user@REALM``) ``roles``: a role mapping with a
        ``username`` rule, made as the cluster's administrator."""
        mapping = name or re.sub(r"[^a-z0-9_]+", "_", principal.lower())
        body = {"roles": list(roles), "enabled": True, "rules": {"field": {"username": principal}}}
        resp = self.request("PUT", f"/_security/role_mapping/{mapping}", body)
        if resp.status != 200:
            raise NodesError(
                f"role mapping for {principal} failed: HTTP {resp.status} {resp.body[:300]!r}"
            )

    def kdc_rss_bytes(self) -> int:
        """Resident memory of the cluster's KDC (0 without Kerberos or when it is stopped)."""
        return self.kdc.rss_bytes() if self.kdc is not None else 0

    def _env(self, node: Node) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(node.dir),
        }
        heap = f"-Xms{self.heap} -Xmx{self.heap}"
        if self.kind == "elasticsearch":
            env.update(
                ES_JAVA_HOME=self.java_home,
                ES_PATH_CONF=str(node.config_dir),
                ES_JAVA_OPTS=heap,
                ES_TMPDIR=str(node.dir / "tmp"),
            )
        else:
            env.update(
                OPENSEARCH_JAVA_HOME=self.java_home,
                OPENSEARCH_PATH_CONF=str(node.config_dir),
                OPENSEARCH_JAVA_OPTS=heap,
                OPENSEARCH_TMPDIR=str(node.dir / "tmp"),
            )
        return env

    def _popen_user(self, who: RunAs) -> dict[str, Any]:
        if not who.switch:
            return {}
        return {"user": who.uid, "group": who.gid, "extra_groups": []}

    def _add_user(self, who: RunAs) -> None:
        tool = Path(self.home) / "bin" / "elasticsearch-users"
        if not tool.exists():
            raise NodesError(f"{tool} missing: cannot create the test user of a secured node")
        for node in self.nodes:
            cmd = [
                str(tool),
                "useradd",
                str(self.username),
                "-p",
                str(self.password),
                "-r",
                "superuser",
            ]
            proc = subprocess.run(
                cmd,
                env=self._env(node),
                cwd=node.dir,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=120,
                **self._popen_user(who),
            )
            if proc.returncode != 0:
                raise NodesError(
                    f"elasticsearch-users useradd failed (exit {proc.returncode})",
                    (proc.stdout + proc.stderr).strip(),
                )

    # ---- public attributes

    @property
    def scheme(self) -> str:
        return "https" if self.secured else "http"

    @property
    def urls(self) -> list[str]:
        return [f"{self.scheme}://127.0.0.1:{n.http_port}" for n in self.nodes]

    @property
    def url(self) -> str:
        return self.urls[0]

    external = False  # started here (see tests/_servers.ExternalServer for the other case)

    @property
    def ca_file(self) -> str | None:
        """Path of the PEM CA that signed the node certificates (secured clusters), else None."""
        return str(self.dir / "certs" / "ca.crt") if self.secured else None

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username and self.password:
            return (self.username, self.password)
        return None

    @property
    def data_dirs(self) -> list[Path]:
        return [n.data_dir for n in self.nodes]

    @property
    def data_dir(self) -> Path:
        return self.nodes[0].data_dir

    @property
    def log_files(self) -> list[Path]:
        return [n.log_file for n in self.nodes]

    @property
    def log_file(self) -> Path:
        return self.nodes[0].log_file

    @property
    def pids(self) -> list[int | None]:
        """Process-group leader pid of each node (None when that node is not running)."""
        return [n.pid if n.alive_pids() else None for n in self.nodes]

    def running(self, i: int) -> bool:
        return bool(self.nodes[i].alive_pids())

    def rss_bytes(self, i: int | None = None) -> int:
        """Resident memory of node ``i`` (all its processes), or of the whole cluster."""
        nodes = self.nodes if i is None else [self.nodes[i]]
        return sum(rss_of(n.alive_pids()) for n in nodes)

    def __repr__(self) -> str:
        return f"<Cluster {self.name} {self.kind} {self.version} {self.urls}>"

    # ---- http

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        i: int = 0,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> Response:
        """An HTTP request to node ``i`` (with the cluster's credentials and CA when secured)."""
        return http(
            self.urls[i] + path,
            method,
            body,
            auth=self.auth if auth else None,
            ca_file=self.ca_file,
            timeout=timeout,
        )

    def api_key(self, name: str = "ecsmh-test", i: int = 0) -> str:
        """Create an API key (secured clusters) and return its base64 ``encoded`` form."""
        if not self.secured:
            raise NodesError("API keys need a secured cluster (security is disabled)")
        if self.api_keys_problem:
            raise NodesError(f"API keys unavailable: {self.api_keys_problem}")
        resp = self.request("POST", "/_security/api_key", {"name": name}, i=i)
        if resp.status != 200:
            raise NodesError(f"creating an API key failed: HTTP {resp.status} {resp.body[:300]!r}")
        return str(resp.json()["encoded"])

    # ---- lifecycle

    def start(self, i: int = 0, *, wait: bool = True, timeout: float = START_TIMEOUT) -> None:
        """Start node ``i`` on its data folder and ports (no-op when running)."""
        node = self.nodes[i]
        if node.alive_pids():
            return
        for port in (node.http_port, node.transport_port):
            deadline = time.monotonic() + 15  # sockets of a node just killed may linger a moment
            while port_in_use(port):
                if time.monotonic() > deadline:
                    raise NodesError(f"port {port} of {node.name} is taken by another process")
                time.sleep(0.2)
        who = run_as()
        binary = (
            Path(self.home)
            / "bin"
            / ("elasticsearch" if self.kind == "elasticsearch" else "opensearch")
        )
        node.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(node.log_file, "ab") as logf:
            logf.write(
                f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {node.name} "
                f"({self.kind} {self.version}) on {self.urls[i]}\n".encode()
            )
            logf.flush()
            if who.switch:
                os.chown(node.log_file, who.uid, who.gid)
            proc = subprocess.Popen(
                [str(binary)],
                cwd=node.dir,
                env=self._env(node),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_user(who),
            )
        self._procs[i] = proc
        node.pid = proc.pid
        node.pid_start = proc_start_time(proc.pid)
        self.save()
        self._started_at = getattr(self, "_started_at", {})
        self._started_at[i] = time.monotonic()
        if wait:
            self.wait_healthy(timeout)

    def start_all(self, timeout: float = START_TIMEOUT) -> None:
        """Start every node (all at once) and wait until the cluster is healthy.

        A Kerberos cluster starts its KDC first."""
        if self.kdc is not None and not self.kdc.running():
            try:
                self.kdc.start()
            except kerberos_module().KdcError as err:
                raise NodesError(str(err), err.detail) from None
            self.save()
        for i in range(len(self.nodes)):
            self.start(i, wait=False)
        self.wait_healthy(timeout)
        if self.kdc is not None:
            self._wait_trial_licence(timeout)

    def _wait_trial_licence(self, timeout: float) -> None:
        """Wait for the self-generated trial licence (it follows health by a moment; until
        then ``GET _license`` answers 404 and the Kerberos realm is not licensed)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            resp = self.request("GET", "/_license", timeout=5)
            if resp.status == 200:
                kind = (resp.json() or {}).get("license", {}).get("type")
                if kind == "trial":
                    return
                last = f"licence type {kind!r}"
            else:
                last = f"HTTP {resp.status}"
            time.sleep(0.2)
        raise NodesError(
            f"{self.name}: no trial licence after {timeout:.0f} s (last: {last}); "
            "the Kerberos realm needs one",
            tail(self.log_file),
        )

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every running node answers cluster health (yellow or better) with all
        running nodes joined.  Raises NodesError with the log tail when a node exits or the
        timeout passes."""
        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.alive_pids()]
        if not running:
            raise NodesError(f"{self.name}: no node is running")
        pending = {n.index for n in running}
        last = ""
        while True:
            for node in [n for n in running if n.index in pending]:
                proc = self._procs.get(node.index)
                if (proc is not None and proc.poll() is not None) or not node.alive_pids():
                    self._reap(node.index)
                    code = proc.returncode if proc is not None else "?"
                    raise NodesError(
                        f"{self.kind} {self.version} node {node.name} exited (code {code}) "
                        f"before becoming healthy; log: {node.log_file}",
                        tail(node.log_file),
                    )
                path = (
                    f"/_cluster/health?wait_for_status=yellow&timeout=1s"
                    f"&wait_for_nodes={len(running)}"
                )
                try:
                    resp = self.request("GET", path, i=node.index, timeout=5)
                except OSError as err:
                    last = str(err)
                else:
                    last = f"HTTP {resp.status}"
                    if resp.status == 200:
                        pending.discard(node.index)
                        started = getattr(self, "_started_at", {}).pop(node.index, None)
                        if started is not None:
                            self.start_seconds[node.index] = time.monotonic() - started
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(self.nodes[i].name for i in sorted(pending))
                raise NodesError(
                    f"{self.kind} {self.version}: {names} not healthy after {timeout:.0f} s "
                    f"(last answer: {last}); log: {self.nodes[min(pending)].log_file}",
                    tail(self.nodes[min(pending)].log_file),
                )
            time.sleep(0.5)

    def _signal(self, i: int, sig: int) -> None:
        node = self.nodes[i]
        if node.pid is None:
            return
        if proc_start_time(node.pid) == node.pid_start or group_pids(node.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.pid, sig)

    def _reap(self, i: int) -> None:
        proc = self._procs.pop(i, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _wait_gone(self, i: int, timeout: float) -> bool:
        node = self.nodes[i]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self._procs.get(i)
            if proc is not None:
                proc.poll()
            if node.pid is None or not group_pids(node.pid):
                return True
            time.sleep(0.1)
        return False

    def stop(self, i: int = 0, grace: float = STOP_GRACE) -> None:
        """Stop node ``i``: SIGTERM to its process group, SIGKILL after ``grace`` seconds."""
        node = self.nodes[i]
        if node.pid is not None and group_pids(node.pid):
            self._signal(i, signal.SIGTERM)
            self._signal(i, signal.SIGCONT)  # a frozen node must wake up to handle SIGTERM
            if not self._wait_gone(i, grace):
                self._signal(i, signal.SIGKILL)
                self._wait_gone(i, 15)
        self._reap(i)
        node.pid = node.pid_start = None
        self.save()

    def kill(self, i: int = 0) -> None:
        """SIGKILL node ``i`` (its whole process group): a crash, no clean shutdown."""
        node = self.nodes[i]
        if node.pid is not None:
            self._signal(i, signal.SIGKILL)
            self._wait_gone(i, 15)
        self._reap(i)
        node.pid = node.pid_start = None
        self.save()

    def _wait_threads(self, i: int, stopped: bool, timeout: float = 10.0) -> None:
        """Wait until every thread of node ``i`` is stopped (or none is)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for pid in self.nodes[i].alive_pids():
                with contextlib.suppress(OSError):
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        with contextlib.suppress(OSError):
                            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                            states.append(raw[raw.rindex(")") + 2])
            if all((st in "tT") == stopped for st in states if st not in "ZX"):
                return
            time.sleep(0.05)

    def freeze(self, i: int = 0) -> None:
        """SIGSTOP node ``i`` (returns once all its threads are stopped): it keeps its sockets
        open, the kernel still accepts connections, but nothing answers."""
        self._signal(i, signal.SIGSTOP)
        self._wait_threads(i, stopped=True)

    def thaw(self, i: int = 0) -> None:
        """SIGCONT node ``i`` after ``freeze``."""
        self._signal(i, signal.SIGCONT)
        self._wait_threads(i, stopped=False)

    def restart(self, i: int = 0, *, wait: bool = True, timeout: float = START_TIMEOUT) -> None:
        """Stop node ``i`` (if running) and start it again on the same data folder and ports."""
        self.stop(i)
        self.start(i, wait=wait, timeout=timeout)

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        # signal everyone first so that the nodes shut down in parallel
        for node in self.nodes:
            if node.pid is not None and group_pids(node.pid):
                self._signal(node.index, signal.SIGTERM)
                self._signal(node.index, signal.SIGCONT)
        for node in self.nodes:
            self.stop(node.index, grace)
        if self.kdc is not None:
            self.kdc.stop()
            self.save()

    def destroy(self, keep_logs: bool = False) -> None:
        """Stop every node and delete the cluster's folder (or all but the logs)."""
        self.stop_all()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        for node in self.nodes:
            for sub in ("data", "tmp"):
                shutil.rmtree(node.dir / sub, ignore_errors=True)

    close = destroy

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def default_name(
    pin: Pin, nodes: int, tiny_queue: bool, secured: bool, kerberos: bool = False
) -> str:
    name = f"{SHORT[pin.kind]}{pin.major}"
    if nodes > 1:
        name += f"-{nodes}n"
    if tiny_queue:
        name += "-tq"
    if kerberos:
        name += "-krb"
    elif secured:
        name += "-sec"
    return name


def kerberos_module() -> Any:
    """``scripts/kdc.py`` (loaded by path, as ``ecsmh_kdc``: this script has no package)."""
    if "ecsmh_kdc" in sys.modules:
        return sys.modules["ecsmh_kdc"]
    import importlib.util

    spec = importlib.util.spec_from_file_location("ecsmh_kdc", SCRIPTS_DIR / "kdc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecsmh_kdc"] = module
    spec.loader.exec_module(module)
    return module


def all_clusters() -> list[Cluster]:
    found = []
    if clusters_dir().is_dir():
        for entry in sorted(clusters_dir().iterdir()):
            if (entry / "state.json").is_file():
                with contextlib.suppress(NodesError, ValueError, KeyError):
                    found.append(Cluster.load(entry.name))
    return found


def reap_orphans(keep_logs_seconds: float = 86400.0) -> list[str]:
    """Stop the nodes of clusters whose owning process (a pytest session) is gone, and delete
    their data; their logs stay for ``keep_logs_seconds`` (for post-mortems), then go too."""
    reaped = []
    for cluster in all_clusters():
        if cluster.owner_pid is None:
            continue
        if proc_start_time(cluster.owner_pid) == cluster.owner_start:
            continue
        try:
            age = time.time() - (cluster.dir / "state.json").stat().st_mtime
        except OSError:
            continue
        if any(n.alive_pids() for n in cluster.nodes) or any(d.exists() for d in cluster.data_dirs):
            cluster.destroy(keep_logs=True)
            reaped.append(cluster.name)
        elif age > keep_logs_seconds:
            shutil.rmtree(cluster.dir, ignore_errors=True)
    return reaped


# --------------------------------------------------------------------------------------------
# OpenSearch with its security plugin (Cluster(kind="opensearch", secured=True))
#
# The plugin must match the node's version exactly; servers.json "opensearch_secured" pins both.
# The node gets the suite's own certificates (make_certs), TLS on HTTP and transport, and the
# suite's own users (bcrypt hashes from the plugin's tools/hash.sh); the security index is
# initialised from config/opensearch-security/*.yml at first start
# (plugins.security.allow_default_init_securityindex), so no securityadmin.sh run is needed.

OS_SECURITY_PLUGIN = "opensearch-security"
#: The least-privilege user of a secured OpenSearch node: may only write metrics to
#: ``OS_WRITER_INDEX_PATTERN`` (role ``OS_WRITER_ROLE``).
OS_WRITER_USERNAME = "ecsmh_writer"
OS_WRITER_PASSWORD = "ecsmh-writer-password"
OS_WRITER_ROLE = "ecsmh_metrics_writer"
OS_WRITER_INDEX_PATTERN = "writer-*"
#: The minimum found by trying on OpenSearch 2.19.4 (removing any one of them makes the bulk
#: request or its items 403; tests/integration/test_secured_opensearch.py ships with exactly
#: these): ``indices:data/write/bulk`` is checked at cluster level, ``bulk[s]`` per shard,
#: ``index`` per document (``create`` ops too), ``admin/create`` auto-creates the day's index
#: and ``admin/mapping/put`` covers dynamic fields (labels) not in the template.
OS_WRITER_CLUSTER_PERMISSIONS = ["indices:data/write/bulk"]
OS_WRITER_INDEX_PERMISSIONS = [
    "indices:data/write/bulk*",
    "indices:data/write/index",
    "indices:admin/create",
    "indices:admin/mapping/put",
]


def secured_os_pins(path: Path = PINS_FILE) -> tuple[Pin, Pin]:
    """(node pin, security-plugin pin) of the secured OpenSearch node, from servers.json."""
    raw = json.loads(path.read_text(encoding="utf-8")).get("opensearch_secured", {})
    majors = sorted(int(k) for k in raw if k.isdigit())
    if not majors:
        raise NodesError(f"no secured OpenSearch pinned in {path} (key opensearch_secured)")
    entry = raw[str(majors[-1])]
    version = entry["version"]
    node = Pin(
        "opensearch",
        majors[-1],
        version,
        entry["coordinates"].format(version=version),
        int(entry["java_min"]),
    )
    plugin_coords = entry["security_plugin"].format(version=version)
    plugin = Pin(
        "opensearch", majors[-1], plugin_coords.split(":")[2], plugin_coords, int(entry["java_min"])
    )
    return node, plugin


def install_os_security_plugin(plugin_pin: Pin, home: Path, java_home: Path, who: RunAs) -> None:
    """Install the security plugin into the OpenSearch distribution at ``home`` (once)."""
    target = home / "plugins" / OS_SECURITY_PLUGIN
    if (target / "plugin-descriptor.properties").is_file():
        return
    with root_lock():
        if (target / "plugin-descriptor.properties").is_file():
            return
        zip_path = fetch(plugin_pin)
        log(f"installing {zip_path.name} into {home}")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "OPENSEARCH_JAVA_HOME": str(java_home),
            "HOME": str(home),
        }
        proc = subprocess.run(
            [str(home / "bin" / "opensearch-plugin"), "install", "--batch", zip_path.as_uri()],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise NodesError(
                f"opensearch-plugin install {zip_path.name} failed (exit {proc.returncode})",
                (proc.stdout + proc.stderr).strip()[-3000:],
            )
        chown_tree(home, who)


def os_security_settings() -> dict[str, Any]:
    """opensearch.yml settings of a secured node (PEM files under config/certs)."""
    settings: dict[str, Any] = {}
    for layer in ("transport", "http"):
        prefix = f"plugins.security.ssl.{layer}"
        settings[f"{prefix}.pemcert_filepath"] = "certs/node.crt"
        settings[f"{prefix}.pemkey_filepath"] = "certs/node.key"
        settings[f"{prefix}.pemtrustedcas_filepath"] = "certs/ca.crt"
    settings["plugins.security.ssl.http.enabled"] = True
    settings["plugins.security.ssl.transport.enforce_hostname_verification"] = False
    settings["plugins.security.nodes_dn"] = ["CN=localhost"]
    settings["plugins.security.authcz.admin_dn"] = ["CN=ecsmh-admin-not-issued"]
    settings["plugins.security.allow_default_init_securityindex"] = True
    settings["plugins.security.restapi.roles_enabled"] = ["all_access"]
    settings["plugins.security.audit.type"] = "noop"
    settings["plugins.security.system_indices.enabled"] = True
    return settings


def os_password_hash(home: Path, java_home: Path, password: str) -> str:
    """The bcrypt hash of ``password``, by the plugin's own ``tools/hash.sh``."""
    tool = home / "plugins" / OS_SECURITY_PLUGIN / "tools" / "hash.sh"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "OPENSEARCH_JAVA_HOME": str(java_home),
    }
    proc = subprocess.run(
        ["bash", str(tool), "-p", password],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    hashes = [w for w in proc.stdout.split() if w.startswith("$2")]
    if proc.returncode != 0 or not hashes:
        raise NodesError(
            f"{tool} failed (exit {proc.returncode})", (proc.stdout + proc.stderr).strip()[-2000:]
        )
    return hashes[-1]


def write_os_security_config(config_dir: Path, hashes: dict[str, str], admin: str) -> None:
    """The suite's users, roles and role mappings in ``config_dir/opensearch-security``.

    ``hashes``: user -> bcrypt hash; ``admin`` gets ``all_access``, ``OS_WRITER_USERNAME``
    the least-privilege writer role. The demo users and roles are not kept.
    """
    folder = config_dir / "opensearch-security"
    folder.mkdir(exist_ok=True)

    def meta(kind: str) -> str:
        return f'_meta:\n  type: "{kind}"\n  config_version: 2\n'

    users = meta("internalusers") + "".join(
        f"{json.dumps(user)}:\n  hash: {json.dumps(pw_hash)}\n  reserved: false\n"
        for user, pw_hash in hashes.items()
    )
    roles = meta("roles") + (
        f"{OS_WRITER_ROLE}:\n"
        f"  cluster_permissions: {json.dumps(OS_WRITER_CLUSTER_PERMISSIONS)}\n"
        f"  index_permissions:\n"
        f"    - index_patterns: {json.dumps([OS_WRITER_INDEX_PATTERN])}\n"
        f"      allowed_actions: {json.dumps(OS_WRITER_INDEX_PERMISSIONS)}\n"
    )
    mapping = meta("rolesmapping") + (
        f"all_access:\n  reserved: false\n  users: {json.dumps([admin])}\n"
        f"{OS_WRITER_ROLE}:\n  users: {json.dumps([OS_WRITER_USERNAME])}\n"
    )
    (folder / "internal_users.yml").write_text(users)
    (folder / "roles.yml").write_text(roles)
    (folder / "roles_mapping.yml").write_text(mapping)


def configure_os_security(cluster: Cluster) -> None:
    """Users and roles of every node of a secured OpenSearch ``cluster`` (before chown)."""
    home, java_home = Path(cluster.home), Path(cluster.java_home)
    hashes = {
        str(cluster.username): os_password_hash(home, java_home, str(cluster.password)),
        OS_WRITER_USERNAME: os_password_hash(home, java_home, OS_WRITER_PASSWORD),
    }
    for node in cluster.nodes:
        write_os_security_config(node.config_dir, hashes, str(cluster.username))


# --------------------------------------------------------------------------------------------
# command line


def _cmd_fetch(args: argparse.Namespace) -> int:
    if args.all:
        pins = [p for by_major in load_pins().values() for p in by_major.values()]
    else:
        pins = [get_pin(args.kind, args.major)]
    who = run_as()
    for pin in pins:
        home = unpack(pin, who)
        print(f"{pin.label}: {artifact_path(pin)} -> {home}")
    if args.all:  # the secured OpenSearch node: its own pin, and the security plugin
        node_pin, plugin_pin = secured_os_pins()
        home = unpack(node_pin, who)
        java_home, _ = find_java(node_pin.kind, node_pin.java_min)
        install_os_security_plugin(plugin_pin, home, java_home, who)
        print(f"{node_pin.label} + {plugin_pin.artifact_id} {plugin_pin.version}: {home}")
    return 0


def _cmd_java(args: argparse.Namespace) -> int:
    pins = [p for by_major in load_pins().values() for p in by_major.values()]
    status = 0
    for pin in pins:
        try:
            home, major = find_java(pin.kind, pin.java_min)
        except NodesError as err:
            print(f"{pin.label}: {err}")
            status = 1
        else:
            print(f"{pin.label}: Java {major} at {home}")
    return status


def _cmd_start(args: argparse.Namespace) -> int:
    pin = get_pin(args.kind, args.major)
    name = args.name or default_name(pin, args.nodes, args.tiny_queue, args.secured, args.kerberos)
    if (clusters_dir() / name / "state.json").exists():
        cluster = Cluster.load(name)
        if cluster.version != pin.version or len(cluster.nodes) != args.nodes:
            raise NodesError(
                f"cluster {name!r} exists with other settings "
                f"({cluster.version}, {len(cluster.nodes)} nodes): "
                f"`stop {name} --purge` first"
            )
        log(f"reusing cluster {name} (same data folders)")
    else:
        cluster = Cluster.create(
            args.kind,
            args.major,
            nodes=args.nodes,
            tiny_queue=args.tiny_queue,
            secured=args.secured,
            kerberos=args.kerberos,
            name=name,
        )
    started = time.monotonic()
    try:
        cluster.start_all(timeout=args.timeout)
    except NodesError:
        cluster.stop_all()
        raise
    log(
        f"{cluster.kind} {cluster.version} cluster {cluster.name!r} healthy in "
        f"{time.monotonic() - started:.1f} s; RSS {cluster.rss_bytes() / 2**20:.0f} MiB; "
        f"logs: {cluster.nodes[0].logs_dir}"
    )
    if cluster.secured:
        log(f"user {cluster.username} / {cluster.password}; CA {cluster.ca_file}")
    if cluster.kdc is not None:
        kdc = cluster.kdc
        log(
            f"KDC {kdc.realm} on 127.0.0.1:{kdc.port}: export KRB5_CONFIG={kdc.krb5_conf}; "
            f"kinit -k -t {kdc.client_keytab} {kdc.client_principal}; map it to roles with "
            f"PUT _security/role_mapping (use https://localhost:{cluster.nodes[0].http_port})"
        )
    if args.json:
        print(json.dumps(cluster.state(), indent=2))
    else:
        print(cluster.url)
    return 0


def _select(args: argparse.Namespace) -> list[Cluster]:
    if getattr(args, "all", False):
        return all_clusters()
    if not args.names:
        raise NodesError("name a cluster (see `status`) or pass --all")
    return [Cluster.load(n) for n in args.names]


def _cmd_stop(args: argparse.Namespace) -> int:
    for cluster in _select(args):
        if args.purge:
            cluster.destroy()
            log(f"stopped and deleted {cluster.name}")
        else:
            cluster.stop_all()
            log(f"stopped {cluster.name} (data kept in {cluster.dir})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    clusters = all_clusters()
    if args.json:
        print(
            json.dumps(
                [
                    c.state() | {"running": [c.running(i) for i in range(len(c.nodes))]}
                    for c in clusters
                ],
                indent=2,
            )
        )
        return 0
    if not clusters:
        print(f"no clusters under {clusters_dir()}")
    for cluster in clusters:
        for node in cluster.nodes:
            pids = node.alive_pids()
            health = "-"
            if pids:
                try:
                    resp = cluster.request(
                        "GET", "/_cluster/health?timeout=1s", i=node.index, timeout=3
                    )
                    health = resp.json().get("status", f"HTTP {resp.status}")
                except (OSError, ValueError):
                    health = "not answering"
            state = (
                f"running pid {node.pid} rss {rss_of(pids) / 2**20:.0f} MiB" if pids else "stopped"
            )
            print(
                f"{node.name:28} {cluster.kind} {cluster.version:8} "
                f"{cluster.urls[node.index]:28} {state:34} health={health}"
            )
    return 0


def _cmd_node_op(args: argparse.Namespace) -> int:
    cluster = Cluster.load(args.name)
    op = args.command
    if op == "restart":
        cluster.restart(args.node, timeout=args.timeout)
    else:
        getattr(cluster, op)(args.node)
    log(f"{op} {cluster.nodes[args.node].name}: done")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    cluster = Cluster.load(args.name)
    print(tail(cluster.nodes[args.node].log_file, args.lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nodes.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def server_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kind", choices=KINDS, default="elasticsearch")
        p.add_argument(
            "--major",
            type=int,
            default=None,
            help="major version pinned in servers.json (default: the newest)",
        )

    p = sub.add_parser("fetch", help="download (once) and unpack a pinned server")
    server_args(p)
    p.add_argument("--all", action="store_true", help="every pinned server")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("java", help="show which JDK each pinned server would use")
    p.set_defaults(func=_cmd_java)

    p = sub.add_parser("start", help="start a cluster; prints its URL once healthy")
    server_args(p)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument(
        "--tiny-queue",
        action="store_true",
        help="thread_pool.write.size=1 and queue_size=1 (429s under load), "
        "http.max_content_length=1mb (413 for larger requests)",
    )
    p.add_argument(
        "--secured",
        action="store_true",
        help="security on, TLS on HTTP, a user with a password, API keys "
        "(Elasticsearch); OpenSearch: the pinned opensearch_secured version "
        "with its security plugin, TLS, Basic auth, an admin and a writer",
    )
    p.add_argument(
        "--kerberos",
        action="store_true",
        help="--secured plus a Kerberos realm and its own KDC (scripts/kdc.py)",
    )
    p.add_argument("--name", help="cluster name (default from kind/major/options, e.g. es9)")
    p.add_argument("--timeout", type=float, default=START_TIMEOUT)
    p.add_argument("--json", action="store_true", help="print the cluster's state as JSON")
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser("stop", help="stop clusters")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--purge", action="store_true", help="also delete data and logs")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("status", help="list clusters and their nodes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)

    for op, text in [
        ("restart", "restart a node on its data folder and ports"),
        ("kill", "SIGKILL a node"),
        ("freeze", "SIGSTOP a node"),
        ("thaw", "SIGCONT a frozen node"),
    ]:
        p = sub.add_parser(op, help=text)
        p.add_argument("name")
        p.add_argument("--node", type=int, default=0)
        p.add_argument("--timeout", type=float, default=START_TIMEOUT)
        p.set_defaults(func=_cmd_node_op)

    p = sub.add_parser("logs", help="print the tail of a node's console log")
    p.add_argument("name")
    p.add_argument("--node", type=int, default=0)
    p.add_argument("-n", "--lines", type=int, default=60)
    p.set_defaults(func=_cmd_logs)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except NodesError as err:
        print(f"error: {err}", file=sys.stderr)
        if err.detail:
            print(err.detail, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
