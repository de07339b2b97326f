"""The client address: the socket's, unless a trusted proxy says otherwise."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from core.clientip import client_ip


def ip(remote: str, forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


@override_settings(PAYGATE_TRUSTED_PROXIES=[])
def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert ip("198.51.100.7", "203.0.113.9") == "198.51.100.7"


@override_settings(PAYGATE_TRUSTED_PROXIES=["10.0.0.0/8", "2001:db8:ff::1"])
@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        pytest.param("198.51.100.7", "203.0.113.9", "198.51.100.7", id="untrusted-peer-cannot-claim"),
        pytest.param("10.0.0.2", "203.0.113.9", "203.0.113.9", id="one-proxy"),
        pytest.param("10.0.0.2", "1.2.3.4, 203.0.113.9", "203.0.113.9", id="spoofed-left-entry-ignored"),
        pytest.param("10.0.0.2", "203.0.113.9, 10.0.0.3", "203.0.113.9", id="two-proxies"),
        pytest.param("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4", id="all-trusted-left-most"),
        pytest.param("10.0.0.2", "", "10.0.0.2", id="no-header"),
        pytest.param("10.0.0.2", "garbage, 203.0.113.9", "203.0.113.9", id="garbage-further-left"),
        pytest.param("10.0.0.2", "203.0.113.9, garbage", "10.0.0.2", id="garbage-from-proxy"),
        pytest.param("10.0.0.2", "[2001:db8::5]:443", "2001:db8::5", id="ipv6-with-port"),
        pytest.param("10.0.0.2", "203.0.113.9:5123", "203.0.113.9", id="ipv4-with-port"),
        pytest.param("2001:db8:ff::1", "2001:db8::7", "2001:db8::7", id="ipv6-proxy"),
        pytest.param("::ffff:10.0.0.2", "203.0.113.9", "203.0.113.9", id="ipv4-mapped-proxy"),
    ],
)
def test_right_most_untrusted_forwarded_address(remote: str, forwarded: str, expected: str) -> None:
    assert ip(remote, forwarded) == expected
