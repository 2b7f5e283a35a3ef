"""`python -m bedrock_sql` runs the CLI."""

from .cli import main

main()
