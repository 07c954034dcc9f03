"""`python -m deepgrade` is the same as the `deepgrade` command."""

from deepgrade.cli import main

raise SystemExit(main())
