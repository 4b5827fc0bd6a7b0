"""``python -m ftcli`` / ``accelerate launch -m ftcli train ...``: the CLI."""

from ftcli.cli.main import main

main()
