"""`python -m wasikv` is the `wasikv` command."""

from .launcher import main

main()
