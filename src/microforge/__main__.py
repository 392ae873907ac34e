"""``python -m microforge``: the same as the ``microforge`` command."""

from .cli import main

main()
