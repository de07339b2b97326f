"""Replace every unkeyed request fingerprint by a keyed one; drop sensitive authentication data.

Until now `request_hash` was a plain SHA-256 of the canonical request, payment details
included: with the masked card and the other fields, the hidden digits fall to brute force.
Each row's fingerprint is recomputed from its decrypted request, checked against the old
hash, and stored as HMAC-SHA256 under the newest of PAYGATE_FINGERPRINT_KEYS. A row whose
request no longer reproduces its old hash gets an empty fingerprint: a later request with
its Idempotency-Key answers 409, as any request with a key whose body cannot be verified.

Final transactions also lose their security codes, PINs and track data, as new ones do
when they become final.
"""

import hashlib
import json

from django.db import migrations

from core.fingerprint import fingerprint
from payments.masking import has_sensitive_auth, without_sensitive_auth

_FINAL = ("completed", "failed")


def _canonical(txn) -> bytes:
    # The canonical request exactly as it was hashed when these rows were written.
    return json.dumps(
        {
            "type": txn.type,
            "customer_id": txn.customer.reference,
            "country": txn.country_id,
            "amount": format(txn.amount.normalize(), "f"),
            "currency": txn.currency,
            "payment_details": txn.payment_details,
            "metadata": txn.metadata,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode()


def forwards(apps, schema_editor):
    Transaction = apps.get_model("payments", "Transaction")
    rows = Transaction.objects.select_related("customer").order_by("pk")
    for txn in rows.iterator(chunk_size=500):
        changes = {}
        if txn.request_hash:
            message = _canonical(txn)
            unkeyed = hashlib.sha256(message).hexdigest()  # only to verify the old value
            changes["request_hash"] = fingerprint(message) if unkeyed == txn.request_hash else ""
        if txn.status in _FINAL and has_sensitive_auth(txn.payment_details):
            changes["payment_details"] = without_sensitive_auth(txn.payment_details)
        if changes:
            Transaction.objects.filter(pk=txn.pk).update(**changes)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0003_transaction_details_purged_at"),
    ]

    # Not reversible in substance: the unkeyed hashes are not written back.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
