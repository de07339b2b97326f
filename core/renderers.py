"""XML responses, for clients whose `Accept` asks for XML."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

# The element name of one item in a list, by the list's own name.
_ITEM_NAMES = {"results": "transaction", "attempts": "attempt", "routes": "route", "gateways": "gateway"}


# Element names we write as they are; any other key (it may come from a client's metadata)
# becomes <entry key="...">, where ElementTree escapes it as an attribute value.
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _child(parent: Element, key: Any) -> Element:
    name = str(key)
    if _XML_NAME.match(name) and not name.lower().startswith("xml"):
        return SubElement(parent, name)
    return SubElement(parent, "entry", key=_text(name))


def _fill(parent: Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(_child(parent, key), item)
    elif isinstance(value, list):
        item_name = _ITEM_NAMES.get(parent.tag, "item")
        for item in value:
            _fill(SubElement(parent, item_name), item)
    elif value is None:
        parent.set("nil", "true")
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    else:
        parent.text = _text(str(value))


def data_to_xml(data: Any, root_name: str) -> bytes:
    if isinstance(data, dict) and len(data) == 1 and "error" in data:
        root_name, data = "error", data["error"]
    root = Element(root_name)
    _fill(root, data)
    body: bytes = tostring(root, encoding="utf-8", xml_declaration=False)  # bytes for any encoding but "unicode"
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


class XMLRenderer(BaseRenderer):
    media_type = "application/xml"
    format = "xml"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        if data is None:
            return b""
        view = (renderer_context or {}).get("view")
        root_name = getattr(view, "xml_root_name", "response")
        return data_to_xml(data, root_name)


class TextXMLRenderer(XMLRenderer):
    media_type = "text/xml"


class JSONFallbackNegotiation(DefaultContentNegotiation):
    """An `Accept` nothing here can produce gets JSON rather than a 406."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        try:
            chosen: tuple[BaseRenderer, str] = super().select_renderer(request, renderers, format_suffix)
        except Exception:
            return JSONRenderer(), JSONRenderer.media_type
        return chosen
