"""Outbound address checks: which addresses are public, and that the connection goes where the check looked."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.http import AddressBlocked, ConnectFailed, HttpClient, TransportError
from core.netguard import AddressPolicy, BlockedAddress, address_is_public

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "fec0::1",  # deprecated site-local, which Python 3.11 calls global
        "feff:ffff::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", [PUBLIC_V4, "8.8.8.8", PUBLIC_V6, "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_is_public(ipaddress.ip_address(address))


def answers(*addresses: str) -> AddressPolicy:
    return AddressPolicy(resolver=lambda host, port: list(addresses))


def test_save_time_check_wants_https_to_public_addresses_only() -> None:
    answers(PUBLIC_V4).check_url("https://gw.example.com/api")
    answers(PUBLIC_V6).check_url("https://gw.example.com:8443")
    with pytest.raises(BlockedAddress, match="https"):
        answers(PUBLIC_V4).check_url("http://gw.example.com")
    for private in ("127.0.0.1", "10.0.0.5", "::1", "::ffff:127.0.0.1", "fe80::1%eth0"):
        with pytest.raises(BlockedAddress, match="non-public"):
            answers(private).check_url("https://gw.example.com")
    # One inside answer among public ones is enough to refuse the name.
    with pytest.raises(BlockedAddress):
        answers(PUBLIC_V4, "192.168.0.10").check_url("https://gw.example.com")
    # Literal addresses are judged the same way (the system resolver gives them back).
    for literal in ("https://127.0.0.1", "https://[::1]:8443", "https://[::ffff:7f00:1]", "https://2130706433"):
        with pytest.raises(BlockedAddress):
            AddressPolicy().check_url(literal)


def test_only_listed_ports_are_allowed_when_a_list_is_given() -> None:
    policy = AddressPolicy(resolver=lambda host, port: [PUBLIC_V4], allowed_ports=frozenset({443}))
    policy.check_url("https://gw.example.com/x")
    policy.check_url("https://gw.example.com:443/x")
    for url in ("https://gw.example.com:22/x", "https://gw.example.com:8443/x"):
        with pytest.raises(BlockedAddress, match="port"):
            policy.check_url(url)
    # At connection time too, where the URL is no longer looked at.
    with pytest.raises(BlockedAddress):
        policy.checked_addresses("gw.example.com", 6379)


def test_unresolvable_and_odd_urls_are_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with pytest.raises(BlockedAddress, match="does not resolve"):
        AddressPolicy(resolver=fails).check_url("https://nowhere.example.com")
    for url in ("ftp://gw.example.com", "https://", "https://gw.example.com:99999", "file:///etc/passwd"):
        with pytest.raises(BlockedAddress):
            answers(PUBLIC_V4).check_url(url)


def test_allow_listed_hosts_and_an_unenforced_policy_pass_as_they_are() -> None:
    listed = AddressPolicy(allowed_hosts=frozenset({"AcmePay", "127.0.0.1"}), resolver=lambda h, p: ["10.0.0.3"])
    listed.check_url("http://acmepay:8101")
    listed.check_url("http://acmepay.:8101")
    listed.check_url("http://127.0.0.1:8000")
    with pytest.raises(BlockedAddress):
        listed.check_url("https://acmepay.internal")  # a different name
    AddressPolicy(enforce=False).check_url("http://127.0.0.1:8101")


# --- connect time -----------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).hosts.append(self.headers.get("Host", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[int, list[str]]]:
    """A plain-HTTP server on loopback that records the Host header of every request it gets."""
    handler = type("Handler", (Recorder,), {"hosts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler.hosts
    server.shutdown()
    server.server_close()


def client_for(policy: AddressPolicy) -> HttpClient:
    return HttpClient(address_policy=lambda: policy, peer_kind="peer")


def send(client: HttpClient, url: str) -> int:
    return client.send("GET", url, connect_timeout=2, read_timeout=2, peer="test").status


def test_dns_rebinding_after_the_check_reaches_nothing(local_server: tuple[int, list[str]]) -> None:
    """The name is public when the base URL is saved and loopback when the call is made."""
    port, hits = local_server
    replies = iter([[PUBLIC_V4], ["127.0.0.1"], ["127.0.0.1"]])
    policy = AddressPolicy(resolver=lambda host, port: next(replies), require_https=False)
    url = f"http://rebind.example.com:{port}/health"
    policy.check_url(url)  # save time: public
    with pytest.raises(AddressBlocked) as blocked:
        send(client_for(policy), url)
    assert blocked.value.submitted is False
    assert hits == []


def test_plain_http_is_refused_at_connect_time(local_server: tuple[int, list[str]]) -> None:
    port, hits = local_server
    policy = AddressPolicy(resolver=lambda host, port: ["127.0.0.1"], permitted=lambda address: True)
    with pytest.raises(AddressBlocked):
        send(client_for(policy), f"http://gw.example.com:{port}/health")
    assert hits == []


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    local_server: tuple[int, list[str]],
) -> None:
    """`.invalid` never resolves: reaching the server proves the socket used the checked answer."""
    port, hits = local_server
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    policy = AddressPolicy(resolver=resolver, permitted=lambda a: a.is_loopback, require_https=False)
    assert send(client_for(policy), f"http://gateway.invalid:{port}/health") == 200
    assert hits == [f"gateway.invalid:{port}"]
    assert resolved == ["gateway.invalid"]


def test_tls_names_the_host_not_the_checked_address(tmp_path: Path) -> None:
    """SNI (and so the certificate check) uses the gateway's name while the socket goes to its checked address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    seen: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)  # type: ignore[assignment,misc,return-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_one() -> None:
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass  # the client refuses the self-signed certificate, as it should
        finally:
            conn.close()

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    policy = AddressPolicy(resolver=lambda host, port: ["127.0.0.1"], permitted=lambda a: a.is_loopback)
    with pytest.raises(TransportError) as failed:
        send(client_for(policy), f"https://gateway.invalid:{port}/health")
    thread.join(5)
    listener.close()
    assert not isinstance(failed.value, ConnectFailed)  # connected; the certificate was what failed
    assert seen == ["gateway.invalid"]
