"""`python -m pipeline.cli`: the `logwarden` command without the installed script."""

from pipeline.cli.app import main

main()
