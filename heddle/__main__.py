"""`python -m heddle` runs the CLI (how the local runtime starts its own processes)."""

from heddle.cli.main import main

main()
