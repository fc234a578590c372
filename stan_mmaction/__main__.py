"""``python -m stan_mmaction COMMAND ...`` (see :mod:`stan_mmaction_cli`)."""
import sys

from stan_mmaction_cli import main

sys.exit(main())
