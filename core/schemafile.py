"""The OpenAPI schema as production serves it (DEBUG off), written to docs/openapi.yaml.

`make schema` writes the file; `core/tests/test_schemafile.py` fails when the committed file differs
from what the code serves, so clients can be generated without a running server and every change
to the API shows in a diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


def schema_yaml() -> str:
    from django.test.utils import override_settings
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiYamlRenderer

    # Production's schema: some patterns depend on DEBUG (a return_url is https only without it).
    with override_settings(DEBUG=False):
        schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    rendered: bytes = OpenApiYamlRenderer().render(schema, renderer_context={})  # type: ignore[no-untyped-call]
    return rendered.decode()


def main() -> None:
    import django

    django.setup()
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_FILE
    target.write_text(schema_yaml())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
