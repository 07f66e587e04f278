"""``python -m bncli``: the same CLI as the ``bncli`` command."""

from .cli import main

main()
