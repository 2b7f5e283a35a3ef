"""The ``bedrock-sql`` command line (click): :mod:`.app` holds the group, the shared options
and :func:`main`; each other module, the commands of one idea."""

from . import check, collect, demo, query, remediate, serve  # noqa: F401 -- registers the commands
from .app import cli, main

__all__ = ["cli", "main"]
