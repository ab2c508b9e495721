"""`python -m workbench.cli …` is the `workbench` command."""

from workbench.cli.commands import main

main()
