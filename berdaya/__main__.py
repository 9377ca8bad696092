"""python -m berdaya: the same as the `berdaya` command."""

from berdaya.cli import main

main()
