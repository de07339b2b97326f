"""The production compose serves https only: nginx terminates TLS with certificates from files,
plain http redirects, web believes nginx's X-Forwarded-Proto and keeps its secure defaults.

Docker is not needed: the files are read as compose and nginx would read them, and the trial
certificate command documented in the nginx configuration is run for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import ROOT

NGINX_CONF = ROOT / "ops" / "nginx" / "paygate.conf"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _servers(conf: str) -> dict[str, str]:
    """Each top-level `server { … }` block by the port it listens on."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^server \{\n(.*?)^\}", conf, flags=re.S | re.M):
        port = re.search(r"listen (\d+)", match.group(1))
        assert port is not None
        blocks[port.group(1)] = match.group(1)
    return blocks


def test_nginx_is_published_on_https_and_a_redirecting_http_port_only_on_loopback_by_default() -> None:
    proxy = _compose()["services"]["proxy"]

    assert proxy["ports"] == [
        "${PAYGATE_BIND_ADDRESS:-127.0.0.1}:${PAYGATE_HTTPS_PORT:-8443}:8443",
        "${PAYGATE_BIND_ADDRESS:-127.0.0.1}:${PAYGATE_HTTP_PORT:-8080}:8080",
    ]
    servers = _servers(NGINX_CONF.read_text())
    assert set(servers) == {"8080", "8443", "8000"}
    assert "return 301 https://$host$request_uri;" in servers["8080"] and "proxy" not in servers["8080"]
    assert "listen 8443 ssl;" in servers["8443"]
    assert "TLSv1.2 TLSv1.3" in servers["8443"] and "TLSv1 " not in servers["8443"]
    # The unpublished listener inside compose's network serves no admin.
    assert re.search(r"location /admin/ \{\s*return 404;", servers["8000"])


def test_every_file_nginx_reads_is_mounted_from_the_repository_or_the_certificate_folder() -> None:
    proxy = _compose()["services"]["proxy"]
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in proxy["volumes"])}
    conf = NGINX_CONF.read_text()

    needed = re.findall(r"^\s*(?:include|ssl_certificate|ssl_certificate_key) (/\S+);", conf, flags=re.M)

    assert needed, "nothing found to check"
    for path in set(needed):
        assert path in mounts, f"nginx reads {path}, which compose does not mount"
        source = ROOT / mounts[path]
        assert source.exists() or mounts[path].startswith("./ops/nginx/certs/"), mounts[path]
    assert (ROOT / "ops" / "nginx" / "certs" / ".gitignore").read_text().splitlines()[1] == "*"


def test_admin_and_metrics_are_limited_by_the_access_files_and_metrics_is_closed_by_default() -> None:
    tls = _servers(NGINX_CONF.read_text())["8443"]

    assert re.search(r"location /admin/ \{\s*include /etc/nginx/paygate/admin-access.conf;", tls)
    assert re.search(r"location = /metrics \{\s*include /etc/nginx/paygate/metrics-access.conf;", tls)
    active = [
        line.strip()
        for line in (ROOT / "ops" / "nginx" / "metrics-access.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert active == ["deny all;"]


def test_web_believes_nginx_about_tls_and_keeps_its_secure_defaults() -> None:
    env = _compose()["x-django-env"]

    assert env["PAYGATE_BEHIND_TLS_PROXY"] == "True" and env["DEBUG"] == "False"
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE"):
        assert name not in env, f"{name} must keep the production default (on) in compose"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_documented_trial_certificate_command_makes_a_pair_for_localhost(tmp_path: Path) -> None:
    comment = "".join(
        line.lstrip("# ").rstrip("\\").rstrip() + " "
        for line in NGINX_CONF.read_text().splitlines()
        if line.startswith("#") and ("openssl" in line or line.startswith("#     -"))
    )
    command = comment[comment.index("openssl") :].strip().replace("ops/nginx/certs/", f"{tmp_path}/")

    subprocess.run(command, shell=True, check=True, capture_output=True)  # noqa: S602  # our own documented command

    text = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "paygate.crt"), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "CN = localhost" in text or "CN=localhost" in text
    assert "DNS:localhost" in text and (tmp_path / "paygate.key").exists()
