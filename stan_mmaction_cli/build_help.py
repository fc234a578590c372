"""Write ``help/<command>.txt``: each tool's own ``--help`` output, as
``stan-mmaction COMMAND --help`` prints it without importing the tool
(``make help-texts``; ``tests/test_cli.py`` fails when one is stale).

Run as ``python -m stan_mmaction_cli.build_help [--check]``: each Python
tool is run in this process with ``--help`` (argparse's text at 80
columns, the program named ``stan-mmaction COMMAND``), each shell tool
with no arguments (its usage line).
"""
import contextlib
import io
import os
import os.path as osp
import runpy
import subprocess
import sys

from . import COMMANDS, HELP_DIR, script_path


def tool_help(command: str) -> str:
    script = script_path(command)
    if script.endswith('.sh'):
        res = subprocess.run(['bash', script], capture_output=True,
                             text=True)
        text = res.stderr.replace(f'bash {script}',
                                  f'stan-mmaction {command}')
        return text.replace('Usage: ', 'usage: ', 1)
    os.environ['COLUMNS'] = '80'
    argv, path = list(sys.argv), list(sys.path)
    out = io.StringIO()
    sys.argv = [f'stan-mmaction {command}', '--help']
    sys.path.insert(0, osp.dirname(script))
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name='__main__')
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sys.argv[:], sys.path[:] = argv, path
    return out.getvalue()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = '--check' in argv
    stale = []
    for command in COMMANDS:
        text = tool_help(command)
        path = osp.join(HELP_DIR, f'{command}.txt')
        old = open(path, encoding='utf-8').read() if osp.isfile(path) \
            else None
        if old != text:
            stale.append(command)
            if not check:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write(text)
    if check and stale:
        print('stale help texts (make help-texts): ' + ', '.join(stale))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
