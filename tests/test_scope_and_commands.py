"""The ``stan_mmaction::`` config scope and the ``stan-mmaction`` command
in a clone (the installed wheel: test_install_requirements.py)."""
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT

from stan_mmaction import commands
from stan_mmaction.registry import config_path

TINY = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


def test_config_path_names_shipped_configs():
    assert config_path('demo/stan_tiny_synthetic.py') == osp.realpath(TINY)
    assert config_path('stan_mmaction::demo/stan_tiny_synthetic.py') == \
        osp.realpath(TINY)
    assert config_path() == osp.realpath(osp.join(REPO_ROOT, 'configs'))
    with pytest.raises(FileNotFoundError, match=r"no shipped config "
                       r"'demo/nope.py'.*the configs are in"):
        config_path('demo/nope.py')


def test_mmengine_finds_the_package_where_it_is():
    """MMEngine's config loader looks a scope's package up with its
    get_installed_path: it must name this package's folder, also for an
    editable install (with pkg_resources it named site-packages)."""
    import mmengine.config.config as config_module

    import stan_mmaction
    assert osp.realpath(config_module.get_installed_path('stan_mmaction')) \
        == osp.realpath(osp.dirname(stan_mmaction.__file__))


def test_a_user_config_inherits_through_the_scope(tmp_path):
    """A config in a folder of its own inherits a shipped config by scope;
    MMEngine tags its dicts with the scope, and the runner's registries
    (MMEngine's roots) build them: the same model as the shipped config."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    user = tmp_path / 'mine.py'
    user.write_text("_base_ = ['stan_mmaction::demo/stan_tiny_synthetic.py']"
                    "\nmodel = dict(backbone=dict(num_stan_layers=1))\n")
    cfg = Config.fromfile(str(user))
    assert cfg.model._scope_ == 'stan_mmaction'
    assert cfg.model.backbone.num_stan_layers == 1
    assert cfg.train_dataloader.dataset.ann_file == \
        Config.fromfile(TINY).train_dataloader.dataset.ann_file
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'StanCLIPBackbone'
    assert model.backbone.num_stan_layers == 1
    torch.manual_seed(0)
    shipped = Config.fromfile(TINY)
    shipped.model.backbone.num_stan_layers = 1
    reference = MODELS.build(shipped.model)
    for (name, a), (_, b) in zip(model.state_dict().items(),
                                 reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_commands_list_run_and_refuse(capsys):
    assert commands.main(['--help']) == 0
    out = capsys.readouterr().out
    for name in ('train', 'test', 'dist-train', 'search', 'demo', 'extract',
                 'convert', 'config-path'):
        assert f'  {name} ' in out, name
    assert commands.main([]) == 2
    with pytest.raises(SystemExit, match="unknown command 'trian'; choose "
                       'from train, test'):
        commands.main(['trian', 'x.py'])
    for name in commands.COMMANDS:  # every command has its script here
        assert osp.isfile(commands.script_path(name)), name
    assert commands.main(['config-path', 'demo/stan_tiny_synthetic.py']) \
        == 0
    assert capsys.readouterr().out.strip() == osp.realpath(TINY)
    with pytest.raises(SystemExit, match='no shipped config'):
        commands.main(['config-path', 'nope.py'])


def test_a_command_runs_its_tool_with_the_arguments(tmp_path, capsys):
    """`stan-mmaction get-flops CONFIG` runs the shipped get_flops.py as
    `python get_flops.py CONFIG` would (here in this process)."""
    import sys
    argv, path = list(sys.argv), list(sys.path)
    try:
        code = commands.main(['get-flops', TINY, '--shape', '1', '3', '8',
                              '32', '32'])
    finally:
        sys.argv[:], sys.path[:] = argv, path
    out = capsys.readouterr().out
    assert code == 0
    assert 'stan_tiny_synthetic' in out and 'GFLOPs' in out, out
