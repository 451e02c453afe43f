"""`python -m worker` is the `renewals` command."""

from worker.cli import main

main()
