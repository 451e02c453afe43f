"""Debian's Prometheus and Alertmanager for the alerting tests: installed with apt when missing
(as root, their packaged services kept from starting), each started on a free loopback port
with a configuration written into a folder of the test's own."""

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.polling import wait_until
from support.services import free_port

PACKAGES = ("prometheus", "prometheus-alertmanager")
ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "renewals-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "renewals-alerts.test.yml"
POLICY = Path("/usr/sbin/policy-rc.d")
_FOR = re.compile(r"^(\s+)for: \S+$", re.MULTILINE)


class MonitoringMissing(Exception):
    """promtool, prometheus or alertmanager is absent and could not be installed; the message says how."""


@dataclass(frozen=True)
class Tools:
    promtool: str
    prometheus: str
    alertmanager: str


def ensure_tools() -> Tools:
    """The paths of Debian's promtool, prometheus and prometheus-alertmanager, installing the
    packages first if needed; their services are not left running on the default ports."""
    found = _which()
    if found is not None:
        return found
    fix = f"apt-get install -y {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise MonitoringMissing(f"the alerting tests need Prometheus and Alertmanager: {fix} (as root)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ours = not POLICY.exists()
    if ours:  # Debian starts a package's service on install unless policy-rc.d says no
        POLICY.write_text("#!/bin/sh\n# written by support/monitoring.py while it installs\nexit 101\n")
        POLICY.chmod(0o755)
    try:
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
            result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1200)
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise MonitoringMissing(f"`{' '.join(command)}` failed ({last}): {fix}")
    finally:
        if ours:
            POLICY.unlink()
    found = _which()
    if found is None:
        raise MonitoringMissing(f"promtool, prometheus or prometheus-alertmanager still missing: {fix}")
    return found


def _which() -> Tools | None:
    paths = [shutil.which(name) for name in ("promtool", "prometheus", "prometheus-alertmanager")]
    if not all(paths):
        return None
    return Tools(*(str(p) for p in paths))


def rules_for_tests(shipped: str, hold: str) -> str:
    """The shipped rules with every alert's `for` replaced by `hold` (e.g. "2s"): the one
    substitution the end-to-end test makes; expressions, labels and annotations stay as shipped."""
    return _FOR.sub(lambda m: f"{m.group(1)}for: {hold}", shipped)


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def _serve(command: Sequence[str], url: str, log: Path) -> Iterator[Server]:
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(url, process, log)
    try:
        try:
            wait_until(lambda: process.poll() is not None or _ready(url), f"{command[0]} ready", 30)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}:\n{server.tail()}") from None
        if process.poll() is not None:
            raise AssertionError(f"{command[0]} exited with {process.returncode}:\n{server.tail()}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def alertmanager(tools: Tools, folder: Path, webhook_url: str) -> Iterator[Server]:
    """Alertmanager on a free loopback port, sending every alert (and its resolution) to
    `webhook_url` at once; clustering off."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: test\n  group_by: ['...']\n"
        "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        f"receivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook_url}'\n"
        "        send_resolved: true\n"
    )
    port = free_port()
    command = [
        tools.alertmanager,
        f"--config.file={config}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _serve(command, f"http://127.0.0.1:{port}", folder / "alertmanager.log") as server:
        yield server


@contextmanager
def prometheus(
    tools: Tools, folder: Path, rules: str, targets: Sequence[str], alertmanager_url: str, every: str = "1s"
) -> Iterator[Server]:
    """Prometheus on a free loopback port: scraping `targets` as job `renewals` and evaluating
    `rules` every `every`, sending to `alertmanager_url`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yml").write_text(rules)
    host = alertmanager_url.split("://", 1)[1]
    config = folder / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n"
        "rule_files: [rules.yml]\n"
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{host}']\n"
        "scrape_configs:\n  - job_name: renewals\n    static_configs:\n"
        f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
    )
    port = free_port()
    command = [
        tools.prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s",
    ]
    with _serve(command, f"http://127.0.0.1:{port}", folder / "prometheus.log") as server:
        # Service discovery hands targets over every 5 s: wait for each to have been scraped
        # (a counter's first sample must come before what the test makes it count).
        try:
            wait_until(lambda: _scraped(server.url, len(targets)), "every target scraped", 30, every=0.2)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}:\n{server.tail()}") from None
        yield server


def _scraped(url: str, count: int) -> bool:
    query = urllib.parse.quote("count(up == 1)")
    with urllib.request.urlopen(f"{url}/api/v1/query?query={query}", timeout=5) as response:
        result = json.loads(response.read())["data"]["result"]
    return bool(result) and int(result[0]["value"][1]) >= count
