"""A stand-in third-party payment gateway, served over HTTP in the JSON or the SOAP protocol.

Integration tests and local runs start one process per gateway (`python -m sandbox`; `manage.py
run_sandbox_gateway` hands over to it). It is no Django app. It records what it receives, answers like a real gateway,
calls back later from background threads, and can be switched at run time into failure
modes through `POST /_sandbox/mode`. It never touches the database, and it shares no code
with Paygate: it is the other side of the protocol, written independently (even its
callback signing), and imports only the standard library, requests and defusedxml.

Modules, from the inside out:
- `config`: one process's set-up (`SandboxConfig`).
- `store`: the records received, by kind and reference (in memory, optionally a JSON file).
- `signing`: the callback signature (`sign_callback`).
- `scheduler`: the callback delivery threads and the signed HTTP POST.
- `soap`: SOAP envelopes, faults, the XML callback body and the WSDL.
- `gateway`: protocol-independent behaviour (modes, idempotency, callbacks).
- `server`: the HTTP request handler for both protocols, `SandboxServer`, `run_forever`.
- `cli`: the command line of `python -m sandbox`.
"""
