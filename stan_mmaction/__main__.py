"""``python -m stan_mmaction COMMAND ...`` (see :mod:`.commands`)."""
import sys

from .commands import main

sys.exit(main())
