"""Running the tools of ``stan-mmaction COMMAND ...`` (the command line
itself, its table of commands, help and shipped names are in the
``stan_mmaction_cli`` package, which imports nothing heavy)."""
import os
import runpy
import subprocess
import sys
from typing import List

from stan_mmaction_cli import COMMANDS, main, script_path  # noqa: F401


def run_script(script: str, args: List[str]) -> int:
    """Run a shipped script as ``python SCRIPT ARGS`` would (``bash`` for
    ``.sh``): in this process, its folder first on the import path, its
    arguments in ``sys.argv``, as ``__main__`` (SystemExit passes
    through)."""
    if script.endswith('.sh'):
        env = dict(os.environ, PYTHON=sys.executable)
        return subprocess.call(['bash', script, *args], env=env)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
