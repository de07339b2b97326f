"""The committed translations: every message translated, and each compiled catalogue up to date."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parents[1] / "locale"
LANGUAGES = ["de", "pt"]


def _po_entries(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    entries = {}
    for msgid, msgstr in re.findall(r'msgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)', text):
        key = "".join(re.findall(r'"(.*)"', msgid)).replace('\\"', '"')
        value = "".join(re.findall(r'"(.*)"', msgstr)).replace('\\"', '"')
        if key:
            entries[key] = value
    return entries


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_and_compiled(language: str) -> None:
    folder = LOCALE / language / "LC_MESSAGES"
    entries = _po_entries(folder / "django.po")
    assert entries and all(entries.values()), [k for k, v in entries.items() if not v]
    with (folder / "django.mo").open("rb") as mo:
        catalogue = gettext.GNUTranslations(mo)
    # The compiled file says what the source says: run compilemessages after editing a .po.
    assert {key: catalogue.gettext(key) for key in entries} == entries
