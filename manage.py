#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

`manage.py run_sandbox_gateway ...` (CONTRACT §4) is `python -m sandbox ...`: the sandbox, a
stand-in third party, is not one of Paygate's Django apps, so it is handed over before Django starts.
"""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["run_sandbox_gateway"]:
        from sandbox.cli import main as sandbox_main

        raise SystemExit(sandbox_main(sys.argv[2:], prog="manage.py run_sandbox_gateway"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paygate.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
