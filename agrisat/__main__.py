"""``python -m agrisat`` runs the command line."""

from .cli import main

main()
