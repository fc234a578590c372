"""No checkpoint or search index can run code: a file whose unpickling would
write a marker file goes through every entry point a user has, and each
refuses it with one message (file, refused global, opt-in); the marker never
appears. The opt-in for trusted legacy files works and warns."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, call_main

from stan_mmaction.datasets import render_video, write_mp4
from stan_mmaction.utils.checkpoint import (TRUST_ENV, UnsafeCheckpointError,
                                            safe_load_url, safe_torch_load)

RECOGNITION_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                           'stan_tiny_synthetic.py')
RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')
REFUSED = 'refused to unpickle builtins.exec'


class Payload:
    """Unpickling this runs ``exec``, which writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')", ))


def write_payload(path, marker):
    torch.save({'state_dict': {}, 'meta': {'epoch': 1},
                'payload': Payload(marker)}, str(path))
    return str(path)


@pytest.fixture
def evil(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'marker'
    return write_payload(tmp_path / 'evil.pth', marker), marker


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('safety')
    rng = np.random.default_rng(0)
    (root / 'videos').mkdir()
    video = str(root / 'videos' / 'v.mp4')
    write_mp4(video, render_video(0, rng, 16, 32))
    labels = root / 'labels.txt'
    labels.write_text('\n'.join(f'c{i}' for i in range(8)) + '\n')
    return root, video, str(labels)


def test_library_entry_points_refuse(evil):
    from stan_mmaction.apis import init_model
    from stan_mmaction.models import StanCLIPBackbone
    path, marker = evil
    with pytest.raises(UnsafeCheckpointError, match=REFUSED):
        StanCLIPBackbone(arch='tiny', pretrained=path)  # pretrained=
    with pytest.raises(UnsafeCheckpointError,
                       match=f'{path}: {REFUSED}.*{TRUST_ENV}=1'):
        init_model(RECOGNITION_CFG, path)  # load_from, demo, search ...
    with pytest.raises(UnsafeCheckpointError, match=REFUSED):
        safe_load_url('file://' + path, model_dir=osp.dirname(path) + '/hub',
                      file_name='evil_copy.pth')  # URL loads
    assert not marker.exists()


def _tool_cases(evil_path, root, video, labels, work):
    folder = str(root / 'videos')
    recog = {}
    return {
        'test.py': (['test.py', RECOGNITION_CFG, evil_path, '--work-dir',
                     work], recog),
        'train.py --resume CKPT': (['train.py', RECOGNITION_CFG,
                                    '--work-dir', work, '--resume',
                                    evil_path], recog),
        'train.py --resume (last_checkpoint)': (
            ['train.py', RECOGNITION_CFG, '--work-dir', work, '--resume'],
            dict(last_checkpoint=True)),
        'train.py load_from': (['train.py', RECOGNITION_CFG, '--work-dir',
                                work, '--cfg-options',
                                f'load_from={evil_path}'], recog),
        'demo/demo.py': (['../demo/demo.py', video, RECOGNITION_CFG,
                          evil_path, '--label-map', labels], recog),
        'search.py index': (['search.py', 'index', folder, '--config',
                             RETRIEVAL_CFG, '--checkpoint', evil_path,
                             '--index', str(root / 'x.idx')], recog),
        'extract_features.py': (['extract_features.py', RETRIEVAL_CFG,
                                 '--checkpoint', evil_path, '--videos',
                                 folder, '--out-dir', work], recog),
    }


# The tools' main(argv), called in this process (their subprocess paths are
# covered by tests/test_inference_tools.py, tests/test_launch_scripts.py and
# tests/test_resume_and_distributed.py).
IN_PROCESS = {'../demo/demo.py': 'demo/demo.py',
              'search.py': 'tools/search.py',
              'extract_features.py': 'tools/extract_features.py',
              'train.py': 'tools/train.py', 'test.py': 'tools/test.py'}


@pytest.mark.parametrize('case', [
    'test.py', 'train.py --resume CKPT',
    'train.py --resume (last_checkpoint)', 'train.py load_from',
    'demo/demo.py', 'search.py index', 'extract_features.py'])
@pytest.mark.slow
def test_tools_refuse_a_payload_checkpoint(case, evil, files, tmp_path,
                                           demo_workspace):
    path, marker = evil
    root, video, labels = files
    work = str(tmp_path / 'work')
    args, opts = _tool_cases(path, root, video, labels, work)[case]
    if opts.get('last_checkpoint'):
        os.makedirs(work)
        with open(osp.join(work, 'last_checkpoint'), 'w') as f:
            f.write(path)
    res = call_main(IN_PROCESS[args[0]], args[1:], cwd=demo_workspace)
    assert res.returncode != 0, res.stdout[-2000:]
    assert REFUSED in res.stderr and f'{TRUST_ENV}=1' in res.stderr, \
        res.stderr[-3000:]
    assert not marker.exists()


@pytest.mark.parametrize('command', ['index', 'query'])
def test_search_refuses_a_payload_index(command, evil, files):
    path, marker = evil
    root, _, _ = files
    if command == 'index':
        args = ['search.py', 'index', str(root / 'videos'), '--config',
                RETRIEVAL_CFG, '--index', path]
    else:
        args = ['search.py', 'query', 'a square', '--index', path]
    res = call_main('tools/' + args[0], args[1:])
    assert res.returncode != 0
    assert 'is not a search index of this version' in res.stderr
    assert 'unpickling can run code' in res.stderr
    assert not marker.exists()


def test_mmengine_checkpoints_load_and_legacy_ones_need_the_opt_in(
        tmp_path, monkeypatch):
    """A checkpoint as MMEngine writes it (history buffers, numpy arrays and
    scalars) loads safely; one pickled the old way (HistoryBuffer through
    getattr) is refused until the user opts in, which logs a warning."""
    from mmengine.logging import HistoryBuffer, MMLogger
    from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint
    monkeypatch.delenv(TRUST_ENV, raising=False)
    buf = HistoryBuffer()
    buf.update(np.float64(1.5))
    ckpt = {'state_dict': {'w': torch.ones(2)},
            'message_hub': {'log_scalars': {'loss': buf},
                            'runtime_info': {'eta': np.float64(3.0)}},
            'rng_state': {'numpy': ('MT19937',
                                    np.arange(4, dtype=np.uint32), 1, 0,
                                    0.0)}}
    path = str(tmp_path / 'ok.pth')
    save_checkpoint(ckpt, path)
    out = _load_checkpoint(path, map_location='cpu')
    assert out['message_hub']['log_scalars']['loss'].mean() == 1.5
    assert out['message_hub']['runtime_info']['eta'] == 3.0
    assert out['rng_state']['numpy'][1].tolist() == [0, 1, 2, 3]

    # Files written before: the buffers pickled with their statistics
    # methods, which unpickle through getattr(HistoryBuffer, 'min').
    monkeypatch.delattr(HistoryBuffer, '__getstate__')
    buf.statistics_methods = {'min': HistoryBuffer.min}
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(ckpt, legacy)
    monkeypatch.undo()
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError,
                       match='refused to unpickle builtins.getattr'):
        _load_checkpoint(legacy, map_location='cpu')
    monkeypatch.setenv(TRUST_ENV, '1')
    logger = MMLogger.get_current_instance()
    warnings = []
    monkeypatch.setattr(logger, 'warning', warnings.append)
    out = safe_torch_load(legacy)
    assert out['message_hub']['log_scalars']['loss'].current() == 1.5
    assert len(warnings) == 1 and 'can run code' in warnings[0]


def test_the_opt_in_really_unpickles_in_full(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    path = write_payload(tmp_path / 'trusted.pth', marker)
    monkeypatch.setenv(TRUST_ENV, '1')
    safe_torch_load(path)
    assert marker.read_text() == 'ran'


def test_url_loads_a_safe_file(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.arange(3.0)}, str(path))
    out = safe_load_url('file://' + str(path), model_dir=str(tmp_path / 'h'))
    assert torch.equal(out['w'], torch.arange(3.0))
