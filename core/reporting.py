"""Error reports that never show payment details or credentials, whatever DEBUG says.

Django's debug page and the reports of logged exceptions (e-mails to ADMINS) list every
frame's local variables, the request's POST data and META, and the settings. Django's own
filter cleanses settings by name and variables only in views marked `sensitive_variables`,
and cleanses nothing but settings while DEBUG is on.
"""

from __future__ import annotations

import re
from types import FrameType
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

# Settings, META entries, dict keys and local variable names whose values are hidden.
SENSITIVE_NAMES = re.compile(
    r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|CREDENTIAL|FERNET"
    r"|DATABASE_URL|BROKER_URL|CACHE_URL|DSN"
    r"|PAYMENT_DETAILS|DETAILS|IBAN|CARD|(?:^|_)PAN(?:$|_)|ACCOUNT|CVV|CVC|ROUTING|HOLDER",
    flags=re.IGNORECASE,
)
# A value holding a card-length run of digits, or a whole request body with payment details.
SENSITIVE_VALUE = re.compile(r"\d{12,19}|payment_details|[A-Z]{2}\d{2}[A-Z0-9]{10,30}")


class PaygateExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = SENSITIVE_NAMES

    def is_active(self, request: HttpRequest | None) -> bool:
        # Django's filter steps aside while DEBUG is on; the debug page is where the leak was.
        return True

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # str() as well: a lazy object (a CSP nonce, say) passes for a str but is not one.
        text = (
            value.decode(errors="replace")
            if isinstance(value, bytes)
            else str(value)
            if isinstance(value, str)
            else None
        )
        if text is not None and SENSITIVE_VALUE.search(text):
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        # Django's own pass honours `sensitive_post_parameters`; names and values are judged on top.
        parameters = super().get_post_parameters(request)
        if request is None:
            return parameters
        cleansed = parameters.copy()
        for name in cleansed:
            cleansed[name] = self.cleanse_setting(name, cleansed[name])
        return cleansed

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: FrameType) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]
