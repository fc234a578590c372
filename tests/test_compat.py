"""Each repair of stan_mmaction.compat: the breakage is real on the pinned
stack without it (fresh interpreter, STAN_MMACTION_NO_COMPAT=1), and the
repaired behaviour is right with it."""
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import run_python, run_python_forked

from stan_mmaction import compat

NO_COMPAT = {'STAN_MMACTION_NO_COMPAT': '1'}
BASE_CFG = "_base_ = ['mmaction::_base_/default_runtime.py']\n"


def _unrepaired_cases(folder) -> dict:
    """What each breakage test runs on the unrepaired stack: name -> code
    (inputs written to ``folder``)."""
    (folder / 'cfg.py').write_text(BASE_CFG)
    ckpt = str(folder / 'ckpt.pth')
    marker = str(folder / 'marker')
    return dict(
        drn='import stan_mmaction.compat; import mmaction.models',
        # With only the drn repair, mmaction.models gets as far as
        # mmaction/utils/dependency.py and stops there.
        importlib_metadata='from stan_mmaction import compat\n'
        'compat.patch_missing_drn()\nimport mmaction.models',
        pkg_resources='import stan_mmaction.compat\n'
        'from mmengine.config import Config\n'
        f'Config.fromfile({str(folder / "cfg.py")!r})',
        torch_load='import stan_mmaction.compat\n' +
        SAVE_MMENGINE_CKPT.format(path=ckpt) +
        'from mmengine.runner.checkpoint import _load_checkpoint\n'
        f'_load_checkpoint({ckpt!r})',
        numpy_aliases='import stan_mmaction.compat, numpy as np\n'
        'print(np.in1d)',
        atomic_local_writes='import stan_mmaction.compat, os\n'
        'from mmengine.fileio.backends import LocalBackend\n'
        'b = LocalBackend()\n'
        f'p = {str(folder / "in_place")!r}\n'
        'b.put(b"old", p)\n'
        'os.fsync = None  # a crash at the same point as the test\'s\n'
        'b.put(b"new!", p)\n'
        'print(open(p, "rb").read())',
        color_jitter_hue='import stan_mmaction.compat, numpy as np\n'
        'from mmaction.datasets.transforms.processing import ColorJitter\n'
        'ColorJitter.adjust_hue(np.zeros((4, 4, 3), np.float32), -0.05)',
        imgaug_numpy_bool='import stan_mmaction.compat, numpy as np\n'
        'from mmaction.datasets.transforms.wrappers import ImgAug\n'
        'try:\n'
        '    ImgAug("default")\n'
        'except ImportError:\n'
        '    pass  # no imgaug: the assignment came first\n'
        'print("np.bool is bool:", np.bool is bool)\n'
        'np.testing.assert_allclose(np.ones(3), np.zeros(3))',
        checkpoint_config='import stan_mmaction\n'
        'import mmengine.runner.runner as r\n'
        f'r.mmengine.Config.fromstring("open({marker!r}, \'w\')", ".py")\n')


@pytest.fixture(scope='module')
def unrepaired(tmp_path_factory):
    """Each breakage's code run without the repairs
    (STAN_MMACTION_NO_COMPAT=1), in one fresh interpreter forking a child
    per case: (folder, {name: result})."""
    folder = tmp_path_factory.mktemp('unrepaired')
    return folder, run_python_forked(_unrepaired_cases(folder), NO_COMPAT)


def test_all_repairs_applied_on_pinned_stack():
    assert compat.apply_all() == [
        'missing_drn', 'importlib_metadata', 'pkg_resources', 'torch_load',
        'numpy_aliases', 'atomic_local_writes', 'fsdp_cpu_optim_state',
        'checkpoint_config', 'color_jitter_hue', 'imgaug_numpy_bool'
    ]  # + 'vindlu_imports' with transformers, 'deepspeed_optimizers'
    # where DeepSpeed is installed


# 1. drn ---------------------------------------------------------------
@pytest.mark.slow
def test_drn_missing_without_compat(unrepaired):
    res = unrepaired[1]['drn']
    assert res.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in res.stderr


def test_drn_stub_lets_mmaction_models_import():
    import mmaction.models  # noqa: F401
    from mmaction.models.localizers.drn.drn import DRN
    from mmaction.registry import MODELS
    assert MODELS.get('Recognizer3D') is not None
    with pytest.raises(ImportError, match='2714'):
        DRN()


def test_drn_stub_not_installed_when_real_module_exists(monkeypatch):
    monkeypatch.setattr(compat.sys, 'meta_path',
                        [f for f in compat.sys.meta_path
                         if not isinstance(f, compat._DRNStubFinder)])
    real_isfile = compat.osp.isfile
    monkeypatch.setattr(
        compat.osp, 'isfile',
        lambda p: p.endswith(osp.join('drn', 'drn.py')) or real_isfile(p))
    assert compat.patch_missing_drn() is False
    assert not any(isinstance(f, compat._DRNStubFinder)
                   for f in compat.sys.meta_path)


# 2. importlib_metadata -------------------------------------------------
@pytest.mark.slow
def test_importlib_metadata_missing_without_compat(unrepaired):
    res = unrepaired[1]['importlib_metadata']
    assert res.returncode != 0
    assert "No module named 'importlib_metadata'" in res.stderr


def test_importlib_metadata_alias_serves_mmaction():
    from mmaction.utils.dependency import satisfy_requirement
    assert satisfy_requirement('torch>=1.3')
    assert not satisfy_requirement('torch>=999.0')
    assert not satisfy_requirement('surely-not-a-package-xyz')


# 3. pkg_resources --------------------------------------------------------
@pytest.mark.slow
def test_mmaction_base_config_fails_without_compat(unrepaired):
    res = unrepaired[1]['pkg_resources']
    assert res.returncode != 0
    assert "No module named 'pkg_resources'" in res.stderr


def test_mmaction_base_config_resolves(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(BASE_CFG)
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmaction'
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'


def test_installed_path_without_pkg_resources():
    import mmaction
    import mmcv
    assert compat.get_installed_path('mmaction') == osp.dirname(
        mmaction.__file__)
    # Distribution and module names differ: mmcv-lite -> mmcv.
    assert compat.get_installed_path('mmcv-lite') == osp.dirname(
        mmcv.__file__)
    assert compat.package2module('mmaction2') == 'mmaction'
    assert compat.is_installed('mmengine')
    assert not compat.is_installed('surely_not_a_package_xyz')


# 4. torch.load weights_only ----------------------------------------------
SAVE_MMENGINE_CKPT = '''
import numpy as np, torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import save_checkpoint
buf = HistoryBuffer()
buf.update(np.float64(1.0))
save_checkpoint({{"state_dict": {{"w": torch.ones(2)}},
                 "message_hub": {{"loss": buf}},
                 "meta": {{"epoch": 3}}}}, {path!r})
'''


@pytest.mark.slow
def test_mmengine_checkpoint_unreadable_without_compat(unrepaired):
    res = unrepaired[1]['torch_load']
    assert res.returncode != 0
    assert 'Weights only load failed' in res.stderr


def test_mmengine_checkpoint_loads_with_compat(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = str(tmp_path / 'ckpt.pth')
    exec(SAVE_MMENGINE_CKPT.format(path=path), {})
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert ckpt['meta']['epoch'] == 3
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['loss'].current() == 1.0
    assert ckpt['message_hub']['loss'].mean() == 1.0  # statistics restored
    # torch's own default is untouched outside mmengine's loader.
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)
    # The loader stays safe: weights_only=True with only the types above
    # allowed, whatever the caller asks (tests/test_checkpoint_safety.py
    # sends payloads through every entry point).
    import mmengine.runner.checkpoint as ckpt_module
    assert ckpt_module.torch.load.__func__ is compat._SafeTorch.load
    assert ckpt_module.load_url is compat._safe_load_url


# 5. numpy aliases -----------------------------------------------------------
@pytest.mark.slow
def test_numpy_aliases_missing_without_compat(unrepaired):
    res = unrepaired[1]['numpy_aliases']
    assert res.returncode != 0
    assert 'in1d' in res.stderr


def test_numpy_aliases_match_their_replacements():
    a = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(np.in1d(a, [2, 3]),
                                  [False, True, True, False])
    np.testing.assert_array_equal(np.in1d(a, [2, 3], invert=True),
                                  [True, False, False, True])
    assert np.trapz([1.0, 2.0, 3.0]) == 4.0
    assert np.Inf == np.inf
    assert np.sctypes['float'] == [np.float16, np.float32, np.float64,
                                   np.longdouble]
    assert np.sctypes['uint'][0] is np.uint8
    assert compat.patch_numpy_aliases() is False  # already there: no-op


def test_mmaction_metric_using_in1d_runs():
    from mmaction.evaluation.metrics.multimodal_metric import RetrievalRecall
    metric = RetrievalRecall(topk=(1, 2))
    # Query 0 ranks item 0 over its target 1 (hit at 2 only); query 1
    # ranks its target 2 first.
    res = metric.calculate(
        np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7]]),
        [np.array([1]), np.array([2])], topk=(1, 2), target_indices=True)
    np.testing.assert_allclose([r.item() for r in res], [50.0, 100.0])


# 11. ColorJitter's hue under numpy 2 ---------------------------------------
@pytest.mark.slow
def test_color_jitter_hue_overflows_without_compat(unrepaired):
    res = unrepaired[1]['color_jitter_hue']
    assert res.returncode != 0
    assert 'OverflowError: Python integer -12 out of bounds for uint8' in \
        res.stderr


@pytest.mark.parametrize('factor', [-0.1, -0.05, -0.004, 0.0, 0.03, 0.1])
def test_color_jitter_hue_matches_numpy1_arithmetic(factor):
    """The repaired hue shift equals the one numpy 1 computed (the uint8
    hue plus the offset in a wider integer, modulo 180), for either sign;
    and the whole transform runs for every draw."""
    import cv2
    from mmaction.datasets.transforms import ColorJitter
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV)
    hue = (hsv[..., 0].astype(np.int64) + int(factor * 255)) % 180
    hsv[..., 0] = hue.astype(np.uint8)
    expected = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    np.testing.assert_array_equal(ColorJitter.adjust_hue(img, factor),
                                  expected)
    jitter = ColorJitter()  # hue drawn from [-0.1, 0.1]
    np.random.seed(0)
    for _ in range(20):
        out = jitter(dict(imgs=[rng.integers(0, 256, (8, 8, 3), np.uint8)]))
        assert out['imgs'][0].dtype == np.uint8
    assert compat.patch_color_jitter_hue() is False  # already repaired


# 12. ImgAug's np.bool ------------------------------------------------------
@pytest.mark.slow
def test_imgaug_replaces_numpy_bool_without_compat(unrepaired):
    """Unrepaired, one ImgAug leaves np.bool = bool, and numpy's own
    assert_allclose then fails with 'error during assertion' (a
    ValueError) instead of reporting the mismatch."""
    res = unrepaired[1]['imgaug_numpy_bool']
    assert 'np.bool is bool: True' in res.stdout
    assert 'ValueError' in res.stderr and 'error during assertion' in \
        res.stderr


IMGAUG_CASE = r"""
import numpy as np
import stan_mmaction  # noqa: F401
from mmaction.datasets.transforms import ImgAug
rng = np.random.default_rng(0)
imgs = list(rng.integers(0, 255, (2, 64, 64, 3)).astype(np.uint8))
out = ImgAug(transforms='default')(dict(imgs=imgs, modality='RGB'))
assert len(out['imgs']) == 2 and out['imgs'][0].dtype == np.uint8
assert out['img_shape'] == out['imgs'][0].shape[:2]
flip = ImgAug(transforms=[dict(type='Fliplr', p=1.0)])
flipped = flip(dict(imgs=[imgs[0]], modality='RGB'))['imgs'][0]
np.testing.assert_array_equal(flipped, imgs[0][:, ::-1])
assert np.bool is not bool
try:
    np.testing.assert_allclose(np.ones(3), np.zeros(3))
except AssertionError:
    print('imgaug ok')
"""


@pytest.mark.slow
def test_imgaug_runs_on_numpy2(imgaug_dir):
    """imgaug installed beside the stack (make test; --no-deps, the venv's
    numpy 2): MMAction2's ImgAug builds and augments (a left-right flip
    exactly), numpy intact afterwards; without the repairs imgaug does not
    import (np.sctypes)."""
    env = {'PYTHONPATH': imgaug_dir}
    res = run_python(IMGAUG_CASE, env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'imgaug ok' in res.stdout
    res = run_python('import stan_mmaction.compat\nimport imgaug',
                     dict(env, **NO_COMPAT))
    assert res.returncode != 0 and 'np.sctypes' in res.stderr


def test_imgaug_leaves_numpy_bool_alone():
    from mmaction.datasets.transforms.wrappers import ImgAug
    before = np.bool
    with pytest.raises(ImportError):  # no imgaug here
        ImgAug('default')
    assert np.bool is before and np.bool is not bool
    with pytest.raises(AssertionError, match='Not equal to tolerance'):
        np.testing.assert_allclose(np.ones(3), np.zeros(3))
    assert compat.patch_imgaug_numpy_bool() is False  # already repaired


# version check ---------------------------------------------------------------
def test_check_versions_names_bad_versions():
    with pytest.raises(compat.UnsupportedStackError) as err:
        compat.check_versions(
            dict(mmcv='2.2.0', mmengine='0.10.7', mmaction2='1.2.0'))
    msg = str(err.value)
    assert 'mmcv==2.2.0 is installed' in msg
    assert 'mmcv-lite==2.1.0' in msg and 'mmaction2==1.2.0' in msg
    with pytest.raises(compat.UnsupportedStackError, match='mmaction2 is '
                       'not installed'):
        compat.check_versions(dict(mmcv='2.1.0', mmengine='0.10.7',
                                   mmaction2=None))
    compat.check_versions(dict(mmcv='2.1.0', mmengine='0.10.7',
                               mmaction2='1.2.0'))


@pytest.mark.slow
def test_unsupported_mmcv_gives_one_clear_error(tmp_path):
    # A fake mmcv 2.2.0 distribution ahead of the real one on sys.path.
    dist = tmp_path / 'mmcv-2.2.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: mmcv\nVersion: 2.2.0\n')
    res = run_python(f'import sys; sys.path.insert(0, {str(tmp_path)!r})\n'
                     'import stan_mmaction')
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('stan_mmaction.compat.UnsupportedStackError')
    assert 'mmcv==2.2.0 is installed' in last
    assert 'pip install' in last


# 6. atomic local writes ------------------------------------------------------
def test_crash_while_saving_keeps_the_old_file(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    backend = LocalBackend()
    target = tmp_path / 'epoch_1.pth'
    backend.put(b'complete checkpoint', target)
    backend.put_text('epoch_1.pth', tmp_path / 'last_checkpoint')

    def crash(fd):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(compat.os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'half a checkp', target)
    with pytest.raises(KeyboardInterrupt):
        backend.put_text('epoch_2.pth', tmp_path / 'last_checkpoint')
    assert target.read_bytes() == b'complete checkpoint'
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_1.pth', 'last_checkpoint']  # no temporary files left


@pytest.mark.slow
def test_plain_mmengine_writes_in_place(unrepaired):
    res = unrepaired[1]['atomic_local_writes']
    # Without the repair the file is rewritten in place (no temp + rename).
    assert res.returncode == 0 and res.stdout.strip() == "b'new!'"


# 8. DeepSpeedStrategy with a DeepSpeed without the 1-bit optimizers
def test_deepspeed_optimizers_register_without_onebit(monkeypatch):
    """A stand-in ``deepspeed`` with the optimizers of 0.19.8 (no
    ``runtime.fp16.onebit``): mmengine's registration fails, ours
    registers what exists."""
    import importlib.machinery
    import sys
    import types

    import mmengine._strategy.deepspeed as ds_strategy
    from mmengine.registry import OPTIMIZERS
    modules = {}
    for name in ('deepspeed', 'deepspeed.ops', 'deepspeed.ops.adam',
                 'deepspeed.ops.lamb', 'deepspeed.runtime',
                 'deepspeed.runtime.fp16'):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        module.__path__ = []
        modules[name] = module
    for name in ('DeepSpeedCPUAdam', 'FusedAdam'):
        setattr(modules['deepspeed.ops.adam'], name,
                type(name, (torch.optim.Adam, ), {}))
    modules['deepspeed.ops.lamb'].FusedLamb = type(
        'FusedLamb', (torch.optim.Adam, ), {})
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    unrepaired = ds_strategy.register_deepspeed_optimizers
    monkeypatch.setattr(ds_strategy, 'register_deepspeed_optimizers',
                        unrepaired)
    for name in ('DeepSpeedCPUAdam', 'FusedAdam', 'FusedLamb'):
        monkeypatch.delitem(OPTIMIZERS._module_dict, name, raising=False)
    with pytest.raises(ModuleNotFoundError, match='onebit'):
        unrepaired()
    assert compat.patch_deepspeed_optimizers()
    assert ds_strategy.register_deepspeed_optimizers() == [
        'DeepSpeedCPUAdam', 'FusedAdam', 'FusedLamb']
    assert OPTIMIZERS.get('FusedLamb') is modules[
        'deepspeed.ops.lamb'].FusedLamb
    for name in ('DeepSpeedCPUAdam', 'FusedAdam', 'FusedLamb'):
        OPTIMIZERS._module_dict.pop(name)


# 9. FSDP full optimizer state dicts on CPU processes
def test_fsdp_full_optimizer_state_copies_out_of_the_gather_buffer(
        monkeypatch):
    """The repair's logic on a stand-in of torch's function (which, like
    torch's on CPU, leaves views of one reused buffer). The breakage in
    torch itself, and the repair on real FSDP: 2 gloo processes in
    tests/test_sharding.py (``optim_states_distinct``: torch's code gives
    exp_avg == exp_avg_sq for every parameter; a 1-process group uses
    NO_SHARD, which never gathers)."""
    import types

    from torch.distributed.fsdp import _optim_utils
    assert _optim_utils._unflatten_orig_param_states is \
        compat._unflatten_orig_param_states_cpu
    buffer = torch.zeros(3)

    def torch_like(info, output_states, state_name, shard_state, to_save,
                   cpu_offload):
        for states in output_states.values():
            states[state_name] = buffer[:2]  # .cpu() of a CPU view: a view

    monkeypatch.setattr(compat.fsdp_cpu_optim_state,
                        '_UNFLATTEN_ORIG_PARAM_STATES', [torch_like])

    def gather(device):
        info = types.SimpleNamespace(state=types.SimpleNamespace(
            compute_device=torch.device(device)))
        out = {'fc.weight': {}}
        for name, value in (('exp_avg', 1.0), ('exp_avg_sq', 2.0)):
            buffer.fill_(value)  # the next state gathered into the buffer
            compat._unflatten_orig_param_states_cpu(info, out, name, False,
                                                    True, True)
        return out['fc.weight']

    states = gather('cpu')
    assert states['exp_avg'].tolist() == [1.0, 1.0]
    assert states['exp_avg_sq'].tolist() == [2.0, 2.0]
    states = gather('cuda')  # .cpu() copied there: left as torch made it
    assert states['exp_avg'].tolist() == [2.0, 2.0]


# 10. config text of checkpoints executed by mmengine ------------------------
@pytest.mark.slow
def test_checkpoint_config_text_runs_without_compat(unrepaired, tmp_path):
    """What resume and the inferencers call on a checkpoint's config text
    executes it on the unrepaired stack (the marker is written); repaired,
    the runners read it as data and the inferencers refuse it."""
    folder, results = unrepaired
    res = results['checkpoint_config']
    assert res.returncode == 0, res.stderr[-2000:]
    assert (folder / 'marker').exists()
    marker = tmp_path / 'marker'
    import mmengine.infer.infer as infer_module
    import mmengine.runner._flexible_runner as flexible_module
    import mmengine.runner.runner as runner_module
    from mmengine.config import Config
    for module in (runner_module, flexible_module):
        cfg = module.mmengine.Config.fromstring(
            f"open({str(marker)!r}, 'w')\ngpu_ids = [0]\n", '.py')
        assert cfg.to_dict() == dict(gpu_ids=[0])
        assert isinstance(Config(), module.mmengine.Config)
    with pytest.raises(ValueError, match='not executed or built'):
        infer_module.Config.fromstring(f"open({str(marker)!r}, 'w')", '.py')
    assert isinstance(Config(), infer_module.Config)
    assert not marker.exists()
    assert compat.config_fromstring_executes()  # upstream still executes


# The package: one module per repair, each documented; versions from one
# source; a detection that cannot decide warns ------------------------------
def test_every_repair_module_states_breakage_detection_fix_and_test():
    import re
    test_names = set(re.findall(r'^def (test_\w+)', open(__file__).read(),
                                re.M))
    assert len(compat.REPAIRS) == 12
    for number, (name, module, patch) in enumerate(compat.REPAIRS, 1):
        doc = module.__doc__
        assert doc.startswith(f'Repair {number}: {name}.'), module.__name__
        for field in ('Breakage:', 'Detected by:', 'Fixed upstream:',
                      'Test:'):
            assert f'\n{field} ' in doc, (module.__name__, field)
        named = doc.split('\nTest: ', 1)[1]
        files = re.findall(r'tests/(test_\w+\.py)', named)
        tests = set(re.findall(r'(?<!/)\b(test_\w+)\b(?!\.py)', named))
        assert tests or files, module.__name__
        assert tests <= test_names, (module.__name__, tests - test_names)
        for name_of_file in files:
            assert osp.isfile(osp.join(osp.dirname(__file__), name_of_file))
        assert patch.__module__ == module.__name__
        # compat.<name> still reaches the module's names.
        assert getattr(compat, patch.__name__) is patch


def test_supported_versions_come_from_the_requirements_and_mmaction():
    import re
    runtime = open(osp.join(osp.dirname(osp.dirname(__file__)),
                            'requirements', 'runtime.txt')).read()
    for name in ('mmengine', 'mmaction2'):
        low, high = compat.supported()[name]
        assert re.search(rf'^{name}>={re.escape(low)},<{re.escape(high)}$',
                         runtime, re.M), name
    # mmcv: the bounds mmaction2's __init__ asserts, read, not imported.
    import importlib.util
    init = open(importlib.util.find_spec('mmaction').origin).read()
    low, high = compat.supported()['mmcv']
    assert f"mmcv_minimum_version = '{low}'" in init
    assert f"mmcv_maximum_version = '{high}'" in init
    assert compat.version_tuple('2.0.0rc4') == (2, 0, 0)
    assert compat.version_tuple('0.10.7+cu130') == (0, 10, 7)
    assert compat.version_tuple('2.14.1') > compat.version_tuple('2.9.1')


def test_a_detection_that_cannot_decide_warns_and_leaves_code_alone(
        monkeypatch):
    """Repair 9 reads the source of torch's _unflatten_orig_param_states:
    a form it knows neither as broken nor as fixed is left alone, with a
    warning naming the repair (never a silent no-op); a fixed form (a
    copy in every case) is left alone silently."""
    import inspect
    import warnings

    from torch.distributed.fsdp import _optim_utils

    def torch_function(*args):
        pass

    monkeypatch.setattr(_optim_utils, '_unflatten_orig_param_states',
                        torch_function)
    monkeypatch.setattr(inspect, 'getsource',
                        lambda obj: 'def f(x):\n    return x\n')
    with pytest.warns(compat.UndecidedRepairWarning,
                      match='fsdp_cpu_optim_state'):
        assert compat.patch_fsdp_cpu_optim_state() is False
    assert _optim_utils._unflatten_orig_param_states is torch_function
    monkeypatch.setattr(inspect, 'getsource', lambda obj: (
        'def f(value):\n    return value.clone()\n'))
    with warnings.catch_warnings():
        warnings.simplefilter('error', compat.UndecidedRepairWarning)
        assert compat.patch_fsdp_cpu_optim_state() is False
    assert _optim_utils._unflatten_orig_param_states is torch_function
    # The broken form is repaired.
    monkeypatch.setattr(inspect, 'getsource', lambda obj: (
        'elif not cpu_offload:\n    value = value.cpu()\n'))
    monkeypatch.setattr(compat.fsdp_cpu_optim_state,
                        '_UNFLATTEN_ORIG_PARAM_STATES', [])
    assert compat.patch_fsdp_cpu_optim_state() is True
    assert _optim_utils._unflatten_orig_param_states is \
        compat._unflatten_orig_param_states_cpu
    assert compat.fsdp_cpu_optim_state._UNFLATTEN_ORIG_PARAM_STATES == [
        torch_function]
