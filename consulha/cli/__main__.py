"""`python -m consulha.cli ...`, the same as the `consulha` command."""

from consulha.cli.main import main

main()
