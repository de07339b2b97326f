"""OpenAPI descriptions shared by every app.

The one error body, the errors any authenticated endpoint can answer, and the pieces that let a
request's schema say exactly what its validation accepts.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.request import Request

ERROR_RESPONSE = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(),
            },
        )
    },
)

# Every endpoint behind an API key can answer these.
AUTHENTICATED_ERRORS = {
    401: OpenApiResponse(ERROR_RESPONSE, description="No, bad, revoked or expired API key"),
    405: OpenApiResponse(ERROR_RESPONSE, description="Method not allowed"),
    413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
    429: OpenApiResponse(ERROR_RESPONSE, description="Rate limited; see the Retry-After header"),
    503: OpenApiResponse(ERROR_RESPONSE, description="Database unreachable for a moment; retry (Retry-After)"),
}


# --- Exact request descriptions ------------------------------------------------------------------
#
# The schema must allow exactly what validation accepts: every request it allows is accepted and
# every one it forbids is refused (`make apicheck` runs schemathesis' checks of both against a
# live server). Patterns below use only what ECMA-262, Rust's regex (schemathesis, jsonschema-rs)
# and Python's `re` read alike: explicit classes and \uXXXX escapes, no \s, \d or look-around.

# Exactly the characters Python's str.strip() removes (str.isspace()): what DRF's CharField and
# the XML parser strip. ECMA's \s differs (it has U+FEFF, lacks U+001C-U+001F and U+0085).
_WS_CLASS = "\\t-\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_SPACE = f"[{_WS_CLASS}]"
_TEXT_EDGE = f"[^\\u0000{_WS_CLASS}]"  # neither white space nor NUL
_TEXT_CHAR = "[^\\u0000]"
# Characters XML 1.0 cannot carry at all (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+FFFE,
# U+FFFF; surrogates cannot occur in a pattern's subject).
_NOT_XML = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\ufffe\\uffff"
_XML_TEXT_EDGE = f"[^{_NOT_XML}{_WS_CLASS}]"
_XML_TEXT_CHAR = f"[^{_NOT_XML}]"
XML_TEXT_PATTERN = f"^{_XML_TEXT_CHAR}*$"
_XML_SPACE = "[\\t\\n\\r ]"  # core.parsers.XML_WHITE_SPACE
_WORD = re.compile("[A-Za-z0-9_-]+")


def stripped_text_pattern(*, min_length: int, max_length: int, xml: bool = False) -> str:
    """A string that DRF's CharField (surrounding white space stripped, NUL refused) takes with these lengths.

    The lengths count the stripped text, so JSON Schema's minLength/maxLength cannot say it. With
    `xml`, as XML text: without the characters XML cannot carry.
    """
    edge, char = (_XML_TEXT_EDGE, _XML_TEXT_CHAR) if xml else (_TEXT_EDGE, _TEXT_CHAR)
    if max_length < 1:
        return f"^{_SPACE}*$"
    inner = edge if max_length == 1 else f"{edge}(?:{char}{{0,{max_length - 2}}}{edge})?"
    if min_length < 1:
        inner = f"(?:{inner})?"
    return f"^{_SPACE}*{inner}{_SPACE}*$"


def not_blank_line_pattern() -> str:
    """One line of text that is not all white space: no C0 control or DEL (as in a header value),
    and at least one character str.strip() keeps."""
    control = "\\u0000-\\u001f\\u007f"
    return f"^[^{control}]*[^{control}{_WS_CLASS}][^{control}]*$"


def xml_text_pattern(pattern: str) -> str:
    """An anchored `^...$` pattern as XML leaf text: the parser strips XML white space around it."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"not an anchored pattern: {pattern!r}")
    return f"^{_XML_SPACE}*(?:{pattern[1:-1]}){_XML_SPACE}*$"


def one_of_pattern(values: list[str]) -> str:
    """An anchored pattern matching exactly these words (an enum, in the XML form that pads it)."""
    if not all(_WORD.fullmatch(value) for value in values):
        raise ValueError("only letters, digits, '_' and '-' need no escaping in every regex dialect")
    return "^(?:" + "|".join(sorted(values)) + ")$"


class DescribedBody(serializers.Serializer):  # type: ignore[type-arg]
    """A request body whose schema is written out, for what fields cannot say on their own: a rule
    across fields (an amount's decimals depend on its currency) or the XML form of a body.

    Never validates anything: it stands in `extend_schema(request=...)` beside the serializer that
    does. Subclasses define `openapi_schema()`; the component is named after the class.
    """

    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        raise NotImplementedError


class _DescribedBodyExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    target_class = DescribedBody
    match_subclasses = True

    def _described(self) -> type[DescribedBody]:
        target = self.target if isinstance(self.target, type) else type(self.target)
        if not issubclass(target, DescribedBody):
            raise TypeError(f"{target!r} is not a DescribedBody")
        return target

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return self._described().__name__

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        # A copy: the enum hook rewrites what it is given in place, so a module-level dict shared
        # by a description would lose its enum for every later request of the schema.
        return copy.deepcopy(self._described().openapi_schema())


def padded_pattern(pattern: str, *, xml: bool = False) -> str:
    """An anchored `^...$` pattern as DRF's CharField reads it: white space around it is removed first.

    With `xml`, only the white space XML can carry (the parser strips XML's own first).
    """
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"not an anchored pattern: {pattern!r}")
    space = f"[{_XML_WS_CLASS}]" if xml else _SPACE
    return f"^{space}*(?:{pattern[1:-1]}){space}*$"


# _WS_CLASS without U+001C-U+001F, which XML 1.0 cannot carry.
_XML_WS_CLASS = "\\t-\\r\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


# --- Serving the schema --------------------------------------------------------------------------


def without_trailing_slashes(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular's postprocessing hook: the routes take `/api/v1/deposits` with or without a
    slash (`/?$`), and the schema names them as the README, the contract and every example do."""
    result["paths"] = {
        (path.rstrip("/") if path != "/" else path): item for path, item in result.get("paths", {}).items()
    }
    return result


class SchemaView(SpectacularAPIView):
    """The schema, YAML by default; `?format=json` (or `yaml`) picks the form, as many tools ask for it.

    The API itself reads `Accept` only (URL_FORMAT_OVERRIDE is off); this page is for tools.
    """

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        wanted = request.query_params.get("format")
        for renderer in self.get_renderers():
            if wanted and renderer.format == wanted:
                return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
