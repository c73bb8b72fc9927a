"""`python -m wasikv` is the `wasikv` command."""

from .cli import main

main()
