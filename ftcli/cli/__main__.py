"""``python -m ftcli.cli``: the CLI."""

from ftcli.cli.main import main

main()
