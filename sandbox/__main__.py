"""`python -m sandbox --code CODE --format json|xml --port PORT`: one fake gateway, no Django."""

from .cli import main

raise SystemExit(main())
