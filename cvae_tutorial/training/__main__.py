"""``python -m cvae_tutorial.training ...``: see :mod:`cvae_tutorial.training.cli`."""
from .cli import main

main()
