#!/usr/bin/env python3
"""A throw-away MIT Kerberos KDC on loopback, for the Kerberos tests of the suite.

Debian's ``krb5-kdc`` / ``krb5-admin-server`` (``krb5kdc``, ``kdb5_util``, ``kadmin.local``) and
``krb5-user`` (``kinit``, ``klist``) are used; nothing of the machine's own Kerberos setup is
read or changed: the KDC and every client command run with ``KRB5_CONFIG`` and
``KRB5_KDC_PROFILE`` pointing at files in the KDC's own folder (``/etc/krb5.conf`` is never
touched).  Standard library only, like ``nodes.py``.

Layout of a KDC folder::

    kdc.conf  krb5.conf          the KDC's profile and the clients' configuration
    principal* stash kadm5.acl   the database (created with ``kdb5_util create -s``)
    http.keytab                  HTTP/localhost@<realm>, for the server (Elasticsearch)
    client.keytab                client@<realm>, for ``kinit -k``
    kdc.log  krb5kdc.out         the KDC's log and its stdout/stderr

Usage::

    python scripts/kdc.py start /tmp/kdc        # prints the KRB5_CONFIG to export; Ctrl-C stops
    KRB5_CONFIG=/tmp/kdc/krb5.conf kinit -k -t /tmp/kdc/client.keytab client@ECSMH.TEST
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_REALM = "ECSMH.TEST"
SERVICE_HOST = "localhost"  # requests-kerberos asks for HTTP@<host of the URL>
CLIENT_NAME = "client"
CLIENT_PASSWORD = "ecsmh-kerberos-client-password"
MASTER_PASSWORD = "ecsmh-kdc-master-password"
ENCTYPES = "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal"
# Debian package of each tool (for the message when one is missing)
TOOLS = {
    "krb5kdc": "krb5-kdc",
    "kdb5_util": "krb5-kdc",
    "kadmin.local": "krb5-admin-server",
    "kinit": "krb5-user",
    "klist": "krb5-user",
}


class KdcError(RuntimeError):
    """The KDC could not be set up or started; ``detail`` holds a log tail or ``""``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def find_tool(name: str) -> str:
    """Path of a Kerberos tool (PATH, then /usr/sbin and /usr/bin); raises KdcError."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise KdcError(
        f"{name} not found: the Kerberos tests need an MIT KDC "
        f"(apt-get install krb5-kdc krb5-admin-server krb5-user; {name} is in {TOOLS[name]})"
    )


def check_tools() -> None:
    """Raise KdcError naming the Debian package of the first Kerberos tool that is missing."""
    for tool in TOOLS:
        find_tool(tool)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_of(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


class Kdc:
    """One realm's KDC in ``folder``, listening on TCP ``127.0.0.1:<port>`` only.

    ``create()`` writes the configuration, the database and two keytabs; ``start()`` runs
    ``krb5kdc -n`` (foreground, its own process group) and returns once it accepts TCP
    connections; ``stop()`` ends it.  Not thread-safe: drive it from one thread.
    Attributes: ``realm``, ``port``, ``krb5_conf``, ``service_principal``,
    ``service_keytab``, ``client_principal``, ``client_password``, ``client_keytab``,
    ``pid``, ``start_seconds`` (of the last start), ``rss_bytes()``.
    """

    def __init__(self, folder: Path, realm: str = DEFAULT_REALM, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.realm = realm
        self.port = port or 0
        self.pid: int | None = None
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- names and paths

    @property
    def kdc_conf(self) -> Path:
        return self.folder / "kdc.conf"

    @property
    def krb5_conf(self) -> Path:
        return self.folder / "krb5.conf"

    @property
    def service_principal(self) -> str:
        return f"HTTP/{SERVICE_HOST}@{self.realm}"

    @property
    def service_keytab(self) -> Path:
        return self.folder / "http.keytab"

    @property
    def client_principal(self) -> str:
        return f"{CLIENT_NAME}@{self.realm}"

    client_password = CLIENT_PASSWORD

    @property
    def client_keytab(self) -> Path:
        return self.folder / "client.keytab"

    @property
    def log_file(self) -> Path:
        return self.folder / "kdc.log"

    def env(self, ccache: Path | str | None = None) -> dict[str, str]:
        """Environment variables for a Kerberos client of this realm (and a ccache file)."""
        env = {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf)}
        if ccache is not None:
            env["KRB5CCNAME"] = f"FILE:{ccache}"
        return env

    def state(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "realm": self.realm, "port": self.port, "pid": self.pid}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Kdc:
        kdc = cls(Path(state["folder"]), state.get("realm") or DEFAULT_REALM, state.get("port"))
        kdc.pid = state.get("pid")
        return kdc

    # ---- setup

    def krb5_conf_text(self) -> str:
        """The clients' krb5.conf: this realm only, no DNS, TCP only (Java and MIT alike)."""
        return (
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            "    udp_preference_limit = 1\n"
            "    ticket_lifetime = 10h\n"
            "    forwardable = true\n"
            f"    default_tkt_enctypes = {ENCTYPES.replace(':normal', '')}\n"
            f"    default_tgs_enctypes = {ENCTYPES.replace(':normal', '')}\n"
            f"    permitted_enctypes = {ENCTYPES.replace(':normal', '')}\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        kdc = 127.0.0.1:{self.port}\n"
            "    }\n"
            "[domain_realm]\n"
            f"    {SERVICE_HOST} = {self.realm}\n"
            f"    .{SERVICE_HOST} = {self.realm}\n"
        )

    def kdc_conf_text(self) -> str:
        f = self.folder
        return (
            "[kdcdefaults]\n"
            f"    kdc_listen = 127.0.0.1:{self.port}\n"
            f"    kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        database_name = {f / 'principal'}\n"
            f"        key_stash_file = {f / 'stash'}\n"
            f"        acl_file = {f / 'kadm5.acl'}\n"
            f"        admin_keytab = FILE:{f / 'kadm5.keytab'}\n"
            f"        kdc_listen = 127.0.0.1:{self.port}\n"
            f"        kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "        max_life = 10h\n"
            "        max_renewable_life = 1d\n"
            f"        supported_enctypes = {ENCTYPES}\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{self.log_file}\n"
            f"    default = FILE:{self.log_file}\n"
        )

    def _run(self, *cmd: str, stdin: str | None = None) -> str:
        env = dict(os.environ)
        env.update(self.env())
        proc = subprocess.run(
            list(cmd),
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise KdcError(
                f"{Path(cmd[0]).name} failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-300:]}"
            )
        return proc.stdout

    def kadmin(self, query: str) -> str:
        """Run one ``kadmin.local`` query against this realm's database."""
        return self._run(find_tool("kadmin.local"), "-r", self.realm, "-q", query)

    def create(self) -> None:
        """Write the configuration, create the database and the two principals with keytabs."""
        check_tools()  # all or nothing: say which package is missing before any work
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port()
        self.krb5_conf.write_text(self.krb5_conf_text())
        self.kdc_conf.write_text(self.kdc_conf_text())
        (self.folder / "kadm5.acl").write_text(f"*/admin@{self.realm} *\n")
        self._run(find_tool("kdb5_util"), "-r", self.realm, "create", "-s", "-P", MASTER_PASSWORD)
        self.kadmin(f"addprinc -randkey {self.service_principal}")
        self.kadmin(f"ktadd -k {self.service_keytab} -norandkey {self.service_principal}")
        self.kadmin(f"addprinc -pw {self.client_password} {self.client_principal}")
        self.kadmin(f"ktadd -k {self.client_keytab} -norandkey {self.client_principal}")
        for keytab in (self.service_keytab, self.client_keytab):
            keytab.chmod(0o600)

    # ---- lifecycle

    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self.pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # our krb5kdc, not a reused pid: its command line names this folder's pid file
        return str(self.folder / "kdc.pid").encode() in cmdline

    def start(self, timeout: float = 30.0) -> None:
        """Start ``krb5kdc -n`` and wait until it accepts TCP connections (no-op if running)."""
        if self.running():
            return
        if not self.kdc_conf.is_file():
            self.create()
        env = dict(os.environ)
        env.update(self.env())
        started = time.monotonic()
        with open(self.folder / "krb5kdc.out", "ab") as out:
            self._proc = subprocess.Popen(
                [find_tool("krb5kdc"), "-n", "-r", self.realm, "-P", str(self.folder / "kdc.pid")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        deadline = started + timeout
        while True:
            if self._proc.poll() is not None:
                raise KdcError(
                    f"krb5kdc exited (code {self._proc.returncode}) before listening on "
                    f"127.0.0.1:{self.port}; log: {self.log_file}",
                    _tail(self.folder / "krb5kdc.out") + "\n" + _tail(self.log_file),
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise KdcError(
                    f"krb5kdc not listening on 127.0.0.1:{self.port} after {timeout:.0f} s",
                    _tail(self.log_file),
                )
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - started

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the KDC (SIGKILL after ``grace`` seconds); no-op when it is not running."""
        if self.pid is not None and self.running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.running() and time.monotonic() < deadline:
                if self._proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(timeout=0.1)
                else:
                    time.sleep(0.1)
            if self.running():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc = None
        self.pid = None

    def rss_bytes(self) -> int:
        """Resident memory of the running KDC in bytes (0 when it is not running)."""
        return _rss_of(self.pid) if self.pid is not None and self.running() else 0

    # ---- clients

    def kinit(
        self, ccache: Path | str, *, keytab: bool = True, principal: str | None = None
    ) -> None:
        """Get a ticket into the ``ccache`` file for the client principal (with its keytab, or
        with its password when ``keytab`` is False), or for ``principal`` (password
        ``client_password``; no keytab)."""
        cmd = [find_tool("kinit"), "-c", f"FILE:{ccache}"]
        if keytab and principal is None:
            self._run(*cmd, "-k", "-t", str(self.client_keytab), self.client_principal)
        else:
            self._run(*cmd, principal or self.client_principal, stdin=self.client_password + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kdc.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="create (if new) and run a KDC in FOLDER until Ctrl-C")
    p.add_argument("folder", type=Path)
    p.add_argument("--realm", default=DEFAULT_REALM)
    args = parser.parse_args(argv)
    kdc = Kdc(args.folder, args.realm)
    state_file = args.folder / "state.json"
    if state_file.is_file():
        kdc = Kdc.from_state(json.loads(state_file.read_text()))
    try:
        kdc.start()
    except KdcError as err:
        print(f"error: {err}\n{err.detail}", file=sys.stderr)
        return 1
    state_file.write_text(json.dumps(kdc.state()) + "\n")
    print(f"export KRB5_CONFIG={kdc.krb5_conf}")
    print(
        f"# {kdc.realm} on tcp/127.0.0.1:{kdc.port}, started in {kdc.start_seconds:.2f} s, "
        f"RSS {kdc.rss_bytes() / 2**20:.1f} MiB; client {kdc.client_principal} "
        f"(keytab {kdc.client_keytab}), service {kdc.service_principal} "
        f"(keytab {kdc.service_keytab})",
        flush=True,
    )
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        kdc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
