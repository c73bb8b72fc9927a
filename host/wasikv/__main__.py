"""`python -m wasikv` is the `wasikv` command."""

from .cli.launcher import main

main()
