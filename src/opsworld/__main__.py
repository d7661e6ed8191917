"""`python -m opsworld` runs the command line."""

from opsworld.cli import main

main()
