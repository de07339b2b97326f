"""The pay page's first-party scripts and their integrity hashes (PCI DSS v4.0 6.4.3).

Each script is a static file of this app, listed with its purpose in docs/security.md; the page
loads it with the CSP nonce and `integrity="sha384-…"` computed here from the file itself, so a
script changed on disk without a new release is refused by the browser.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from django.contrib.staticfiles import finders

# Every script a pay page may load, and why (kept in agreement with docs/security.md by a test).
PAY_PAGE_SCRIPTS = {
    "checkout/collect.js": "Groups the card number in fours and writes the expiry as MM / YY while the customer types.",
}


@lru_cache(maxsize=8)
def script_integrity(path: str) -> str:
    """`sha384-<base64>` of a listed script's bytes."""
    if path not in PAY_PAGE_SCRIPTS:
        raise ValueError(f"{path} is not a listed pay page script.")
    found = finders.find(path)
    if not found:
        raise FileNotFoundError(path)
    with open(found if isinstance(found, str) else found[0], "rb") as handle:
        digest = hashlib.sha384(handle.read()).digest()
    return "sha384-" + base64.b64encode(digest).decode()
