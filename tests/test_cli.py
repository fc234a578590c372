"""``stan-mmaction``: help without importing torch or the plugin, help
texts that are the tools' own, shipped config names in every command,
``config-path`` confined to the configs folder."""
import os.path as osp
import subprocess
import sys

import pytest
from conftest import DEMO_CFG, REPO_ROOT, subprocess_env

import stan_mmaction_cli as cli

SHIPPED = 'demo/stan_tiny_synthetic.py'


def test_help_imports_nothing_heavy():
    """The command's and each subcommand's help in a fresh interpreter:
    neither torch, MMEngine nor the plugin is imported (they cost ~6 s on
    2 cores; docs/tools.md has the timings)."""
    code = ('import sys, stan_mmaction_cli as c\n'
            'for cmd in [["--help"], ["train", "--help"], ["get-flops", '
            '"-h"], ["dist-train", "--help"], ["config-path", '
            f'{SHIPPED!r}]]:\n'
            '    assert c.main(cmd) == 0\n'
            'heavy = [m for m in ("torch", "mmengine", "mmaction", '
            '"stan_mmaction") if m in sys.modules]\n'
            'print("heavy:", heavy)\n')
    res = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                         env=subprocess_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'heavy: []' in res.stdout
    assert 'usage: train.py [-h] [--work-dir WORK_DIR]' in res.stdout
    assert 'usage: stan-mmaction dist-train CONFIG GPUS' in res.stdout


@pytest.mark.slow
def test_help_texts_are_the_tools_own():
    """help/<command>.txt is what each tool prints for --help now (one
    process runs them all); `make help-texts` rewrites stale ones."""
    res = subprocess.run([sys.executable, '-m', 'stan_mmaction_cli.'
                          'build_help', '--check'], cwd=REPO_ROOT,
                         env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    assert sorted(f[:-4] for f in __import__('os').listdir(cli.HELP_DIR)) \
        == sorted(cli.COMMANDS)


def test_help_is_asked_before_a_double_dash(capsys):
    assert cli.main(['search', 'query', '--help']) == 0
    assert capsys.readouterr().out == cli.help_text('search')


def test_shipped_names_are_resolved_in_every_argument_form(tmp_path,
                                                           monkeypatch):
    real = osp.realpath(DEMO_CFG)
    mine = tmp_path / 'demo' / 'stan_tiny_synthetic.py'  # a file of yours
    mine.parent.mkdir()
    mine.write_text('x = 1\n')
    assert cli.resolve_config_args([
        SHIPPED, f'stan_mmaction::{SHIPPED}', f'--config={SHIPPED}',
        '--config', SHIPPED, 'nope.py', 'notes.txt']) == [
            real, real, f'--config={real}', '--config', real, 'nope.py',
            'notes.txt']
    monkeypatch.chdir(tmp_path)  # a file here of the same name wins
    assert cli.resolve_config_args([SHIPPED]) == [SHIPPED]


def test_config_path_stays_in_the_configs_folder():
    with pytest.raises(FileNotFoundError, match='no shipped config'):
        cli.config_path('../../../../../../etc/passwd')
    with pytest.raises(FileNotFoundError, match='no shipped config'):
        cli.config_path('../tools/train.py')
    with pytest.raises(SystemExit, match='no shipped config'):
        cli.main(['config-path', '../../../../etc/passwd'])
    configs = osp.realpath(osp.join(REPO_ROOT, 'configs'))
    assert cli.config_path('') == configs


@pytest.mark.slow
def test_train_and_get_flops_take_a_shipped_name(demo_workspace, tmp_path):
    """`stan-mmaction train demo/stan_tiny_synthetic.py` (refused before,
    as `mim train mmaction NAME` accepts it), run from a folder without
    the config, as the command does (in this process)."""
    import sys as _sys
    argv, path = list(_sys.argv), list(_sys.path)
    try:
        res = call_main_cli(['train', SHIPPED, '--work-dir',
                             str(tmp_path / 'w'), '--cfg-options',
                             'train_cfg.max_epochs=1'], demo_workspace)
        assert res.returncode == 0, res.stderr[-3000:]
        assert osp.isfile(tmp_path / 'w' / 'epoch_1.pth')
        res = call_main_cli(['get-flops', SHIPPED, '--shape', '1', '3', '8',
                             '32', '32'], str(tmp_path))
        assert res.returncode == 0, res.stderr[-3000:]
        assert 'GFLOPs' in res.stdout
    finally:
        _sys.argv[:], _sys.path[:] = argv, path


def call_main_cli(argv, cwd):
    from conftest import _run_captured
    return _run_captured(lambda: cli.main(argv), cwd)
