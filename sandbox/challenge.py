"""The sandbox's pages for the customer (CONTRACT §11): a bank's challenge, as a browser sees it.

Plain HTML with its own small style; three buttons post the customer's choice back to the
sandbox, which answers `303` to the payment's `return_url`.
"""

from __future__ import annotations

from html import escape

from .store import Payment

_STYLE = """
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#eef1f5;color:#1b2330}
main{max-width:420px;margin:0 auto;padding:24px 16px}
.card{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:24px}
.bank{display:flex;align-items:center;gap:10px;font-weight:700;font-size:18px;margin-bottom:16px}
.logo{width:36px;height:36px;border-radius:8px;background:#0b5cad;color:#fff;display:grid;place-items:center}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;margin:16px 0}
h1{font-size:22px;line-height:1.3;margin:0 0 8px}
dt{color:#5b6575}dd{margin:0;font-weight:600;text-align:right}
button{display:block;width:100%;padding:14px;margin-top:10px;font-size:16px;border-radius:8px;
cursor:pointer;border:1px solid #c8ced8;background:#fff}
button.approve{background:#0b5cad;border-color:#0b5cad;color:#fff;font-weight:600}
small{display:block;margin-top:16px;color:#5b6575}
"""


def _page(title: str, content: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><div class=card>{content}</div></main></body></html>"
    )


def challenge_page(payment: Payment) -> str:
    action = f"/challenge/{escape(payment.payment_id, quote=True)}/decide"
    return _page(
        "Confirm your payment",
        "<div class=bank><span class=logo aria-hidden=true>SB</span>Sandbox Bank · Secure check</div>"
        "<h1>Confirm your payment</h1>"
        "<p>Your bank asks you to confirm this payment.</p>"
        f"<dl><dt>Amount</dt><dd>{escape(payment.amount)} {escape(payment.currency)}</dd>"
        f"<dt>Reference</dt><dd>{escape(payment.payment_id[:16])}</dd></dl>"
        f'<form method=post action="{action}">'
        "<button class=approve name=choice value=approve type=submit>Approve</button>"
        "<button name=choice value=decline type=submit>Decline</button>"
        "<button name=choice value=cancel type=submit>Cancel</button>"
        "</form><small>This is a sandbox: no money moves.</small>",
    )


def done_page(message: str) -> str:
    return _page(
        "Sandbox Bank", f"<div class=bank><span class=logo>SB</span>Sandbox Bank</div><p>{escape(message)}</p>"
    )
