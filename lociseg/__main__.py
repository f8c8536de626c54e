"""``python -m lociseg``: the command line."""

from .cli.main import console

console()
