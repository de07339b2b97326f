"""XML responses, for clients whose `Accept` asks for XML."""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from rest_framework.renderers import BaseRenderer

# The element name of one item in a list, by the list's own name.
_ITEM_NAMES = {"results": "transaction", "attempts": "attempt", "routes": "route", "gateways": "gateway"}


def _fill(parent: Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(SubElement(parent, str(key)), item)
    elif isinstance(value, list):
        item_name = _ITEM_NAMES.get(parent.tag, "item")
        for item in value:
            _fill(SubElement(parent, item_name), item)
    elif value is None:
        parent.set("nil", "true")
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def data_to_xml(data: Any, root_name: str) -> bytes:
    if isinstance(data, dict) and len(data) == 1 and "error" in data:
        root_name, data = "error", data["error"]
    root = Element(root_name)
    _fill(root, data)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="utf-8", xml_declaration=False)


class XMLRenderer(BaseRenderer):
    media_type = "application/xml"
    format = "xml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None) -> bytes:
        if data is None:
            return b""
        view = (renderer_context or {}).get("view")
        root_name = getattr(view, "xml_root_name", "response")
        return data_to_xml(data, root_name)


class TextXMLRenderer(XMLRenderer):
    media_type = "text/xml"
