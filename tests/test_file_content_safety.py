"""What a file carries stays data after loading too: the config text inside
a checkpoint is never executed (MMEngine's resume and inferencers), and
numpy content cannot forge object pointers (no crash, a refusal)."""
import os
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT, run_python, subprocess_env

from stan_mmaction.utils.config_text import config_text_to_dict

TINY = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


def evil_config(marker) -> str:
    return (f"x = __import__('os').system('touch {marker}')\n"
            f"open({str(marker)!r}, 'w')\n")


def test_config_text_is_read_as_data(tmp_path):
    """A config's pretty text reads back as exactly its data; code in the
    text is left out and never runs, in every format."""
    from mmengine.config import Config
    cfg = Config.fromfile(TINY)
    assert config_text_to_dict(cfg.pretty_text) == cfg.to_dict()
    marker = tmp_path / 'marker'
    text = evil_config(marker) + (
        "gpu_ids = [0, 1]\nn = -2\nroot = 'data'\nd = dict(root=root, n=n)\n"
        "f = lambda: 1\ng = [len('x')]\nh = {**d}\nk = {[1]: 2}\n"
        "s = f'{root}/x'\nm = d['n']\n_base_ = ['evil.py']\n")
    data = config_text_to_dict(text)
    assert data == dict(gpu_ids=[0, 1], n=-2, root='data',
                        d=dict(root='data', n=-2), _base_=['evil.py'])
    assert not marker.exists()
    assert config_text_to_dict('{"gpu_ids": [0]}', '.json') == \
        dict(gpu_ids=[0])
    yaml_payload = ("x: !!python/object/apply:os.system "
                    f"['touch {marker}']\n")
    assert config_text_to_dict(yaml_payload, '.yaml') == {}
    assert config_text_to_dict('def (:', '.py') == {}
    assert config_text_to_dict('[' * 100000, '.py') == {}
    assert not marker.exists()


@pytest.fixture(scope='module')
def trained(tiny_trained):
    """The first epoch's checkpoint of the session's tiny training run."""
    return osp.join(tiny_trained, 'epoch_1.pth')


def tampered(trained, path, config_text):
    ckpt = torch.load(trained, map_location='cpu', weights_only=False)
    ckpt['meta']['config'] = config_text
    ckpt['meta']['cfg'] = config_text
    ckpt['message_hub']['runtime_info']['cfg'] = config_text
    torch.save(ckpt, str(path))
    return str(path)


def _resume(runner_type, ckpt, work, demo_workspace, epochs=2):
    """Resume training in this process; what the run changes in it (cwd,
    MMEngine's named loggers and visualizer: two runners made in the same
    second would share the first one's) is restored afterwards."""
    import os

    from conftest import process_state_kept
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    cfg = Config.fromfile(TINY)
    cfg.work_dir, cfg.resume, cfg.load_from = str(work), True, ckpt
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = 10
    if runner_type == 'FlexibleRunner':
        cfg.runner_type = 'FlexibleRunner'
        cfg.strategy = dict(type='SingleDeviceStrategy')
    with process_state_kept():
        os.chdir(demo_workspace)
        runner = Runner.from_cfg(cfg) if runner_type == 'Runner' else \
            RUNNERS.build(cfg)
        runner.train()
    return runner


@pytest.mark.parametrize('runner_type', ['Runner', 'FlexibleRunner'])
@pytest.mark.slow
def test_resume_reads_the_checkpoints_config_as_data(
        trained, tmp_path, demo_workspace, runner_type):
    """MMEngine's resume (plain runner and FlexibleRunner, which FSDP and
    DeepSpeed use) gets the checkpoint's config as data: code in it never
    runs and training goes on; its gpu_ids are still compared."""
    marker = tmp_path / 'marker'
    evil = tampered(trained, tmp_path / 'evil.pth', evil_config(marker))
    runner = _resume(runner_type, evil, tmp_path / 'work', demo_workspace)
    assert runner.train_loop.epoch == 2
    assert not marker.exists()
    # The check MMEngine reads the text for still works.
    two_gpus = tampered(trained, tmp_path / 'gpus.pth', 'gpu_ids = [0, 1]')
    with pytest.raises(RuntimeError, match='Number of GPU|number of GPU'):
        _resume(runner_type, two_gpus, tmp_path / 'work2', demo_workspace)


@pytest.mark.slow
def test_mmaction2_train_tool_resume_runs_no_checkpoint_code(
        trained, tmp_path, demo_workspace):
    """MMAction2's own train.py --resume on a checkpoint whose config text
    runs a command: the plugin (imported by the config's custom_imports,
    before resuming) keeps it data; training goes on, exit 0."""
    import subprocess
    import sys

    import mmaction
    marker = tmp_path / 'marker'
    evil = tampered(trained, tmp_path / 'evil.pth', evil_config(marker))
    tool = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools',
                    'train.py')
    res = subprocess.run(
        [sys.executable, tool, TINY, '--work-dir', str(tmp_path / 'w'),
         '--resume', evil, '--cfg-options', 'train_cfg.max_epochs=2'],
        cwd=demo_workspace, env=subprocess_env(), capture_output=True,
        text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'resumed epoch: 1' in res.stdout + res.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_inferencer_refuses_the_checkpoints_config(trained, tmp_path):
    """MMEngine's inferencers given weights alone would build the model
    from the checkpoint's config text: refused with a message asking for
    the config; nothing runs."""
    from mmaction.apis.inferencers import ActionRecogInferencer
    marker = tmp_path / 'marker'
    evil = tampered(trained, tmp_path / 'evil.pth', evil_config(marker))
    with pytest.raises(ValueError, match='config stored inside a checkpoint '
                       'is not executed or built.*model=CONFIG'):
        ActionRecogInferencer(model=None, weights=evil)
    assert not marker.exists()


FORGE = '''
import numpy as np, torch
from numpy._core.multiarray import _reconstruct, scalar
OBJ = np.dtype('O')


class ForgedDtype:  # object field, flags 0: raw bytes become pointers
    def __reduce__(self):
        return (np.dtype, ('V8', False, True),
                (3, '|', None, ('a',), {{'a': (OBJ, 0)}}, 8, 1, 0))


class Reconstructed:
    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, data

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b'b'),
                (1, (1,), self.dtype, False, self.data))


class Called:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


cases = dict(
    forged_dtype=Reconstructed(ForgedDtype(), b'A' * 8),
    object_array=Reconstructed(OBJ, [1]),
    float_array_short_data=Reconstructed(np.dtype('f8'), b'A' * 4),
    void_scalar=Called(scalar, ForgedDtype(), b'A' * 8),
    ndarray_from_buffer=Called(np.ndarray, (1,), np.dtype('f8'), b'A' * 8),
    big_bytes=Called(bytes, 10 ** 12),
)
import stan_mmaction
from stan_mmaction.utils.checkpoint import (UnsafeCheckpointError,
                                            safe_torch_load)
for name, obj in cases.items():
    path = {folder!r} + '/' + name + '.pth'
    torch.save(dict(meta=dict(epoch=obj)), path)
    try:
        safe_torch_load(path)
        print(name, 'LOADED')
    except UnsafeCheckpointError as err:
        print(name, 'refused:', str(err).split(' (it could run code)')[0])
'''


@pytest.mark.slow
def test_numpy_content_cannot_forge_objects(tmp_path):
    """Arrays and scalars are built with a dtype rebuilt from its type
    string and must be plain numeric or bool: a forged structured dtype
    with an object field, object arrays, short data, raw-memory
    constructors and huge allocations are refused, never a crash (run in
    a child process: a regression would be a segmentation fault)."""
    res = run_python(FORGE.format(folder=str(tmp_path)))
    assert res.returncode == 0, (res.returncode, res.stderr[-3000:])
    lines = dict(line.split(' ', 1) for line in res.stdout.splitlines())
    assert len(lines) == 6 and all(v.startswith('refused: ')
                                   for v in lines.values()), lines
    assert "numpy dtype '|V8'" in lines['forged_dtype']
    assert "numpy dtype '|O'" in lines['object_array']
    assert 'numpy array data' in lines['float_array_short_data']
    assert 'numpy ndarray constructor' in lines['ndarray_from_buffer']
    assert 'bytes(...) with arguments' in lines['big_bytes']


def test_plain_numpy_content_loads_as_plain_arrays(tmp_path):
    """Every plain kind, byte order, layout and empty arrays load equal,
    as np.ndarray (not the checking subclass), also inside MMEngine's
    history buffers and numpy's RNG state."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    from stan_mmaction.utils.checkpoint import safe_torch_load
    history = HistoryBuffer()
    history.update(1.5)
    saved = dict(
        f=np.arange(6.).reshape(2, 3).T, b=np.array([True, False]),
        i=np.array([1, -2], '>i4'), u=np.uint16(7), c=np.array([1 + 2j]),
        e=np.zeros((0, 3), np.int8), s=np.float64(2.5),
        fortran=np.asfortranarray(np.ones((2, 3), np.float32)),
        rng=np.random.RandomState(0).get_state(), history=history,
        empty_history=HistoryBuffer(), nested=[{'a': (np.ones(2), 1)}])
    torch.save(saved, str(tmp_path / 'ok.pth'))
    loaded = safe_torch_load(str(tmp_path / 'ok.pth'))
    import pickle
    for key in ('f', 'b', 'i', 'c', 'e', 'fortran'):
        assert type(loaded[key]) is np.ndarray, key
        # as numpy's own unpickling gives it (big-endian data comes back
        # in native order, values kept)
        assert loaded[key].dtype == pickle.loads(pickle.dumps(
            saved[key])).dtype, key
        np.testing.assert_array_equal(loaded[key], saved[key])
    assert loaded['fortran'].flags['F_CONTIGUOUS']
    assert loaded['u'] == 7 and loaded['u'].dtype == np.uint16
    assert loaded['s'] == 2.5
    assert type(loaded['rng'][1]) is np.ndarray
    np.testing.assert_array_equal(loaded['rng'][1], saved['rng'][1])
    assert loaded['history'].current() == 1.5
    assert type(loaded['nested'][0]['a'][0]) is np.ndarray


RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')


@pytest.fixture(scope='module')
def built_index(tmp_path_factory):
    """An index of 3 videos by a random tiny retriever, built by the tool."""
    from conftest import call_main, save_random_checkpoint, write_videos
    root = tmp_path_factory.mktemp('index')
    ckpt = str(root / 'model.pth')
    save_random_checkpoint(RETRIEVAL_CFG, ckpt)
    write_videos(root / 'videos', [0, 3, 5])
    index = str(root / 'v.idx')
    res = call_main('tools/search.py', [
        'index', str(root / 'videos'), '--config', RETRIEVAL_CFG,
        '--checkpoint', ckpt, '--index', index, '--dtype', 'fp32'])
    assert res.returncode == 0, res.stderr[-2000:]
    return root, ckpt, index


def rewrite_index(index, out, embeddings=None, **changes):
    """The index at ``index`` with metadata fields changed (signature
    kept as it was: whoever rewrites has no key), written to ``out``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from stan_mmaction.apis.search_index import META_KEY
    with safe_open(index, framework='pt') as f:
        meta = json.loads(f.metadata()[META_KEY])
        emb = f.get_tensor('embeddings')
    meta.update(changes)
    save_file(dict(embeddings=emb if embeddings is None else embeddings),
              str(out), metadata={META_KEY: json.dumps(meta)})
    return str(out)


def query(index, *extra):
    from conftest import call_main
    return call_main('tools/search.py', ['query', 'a square moves left',
                                         '--index', index, *extra])


def test_tampered_index_runs_nothing(built_index, tmp_path):
    """An index is never merged into a config or built: options it carries
    are refused, a config it names is run only if this user's key signed
    the index (a recomputed fingerprint is not enough), and a foreign
    index answers only with the model the user names."""
    from stan_mmaction.apis.search_index import config_files_sha256
    root, ckpt, index = built_index
    marker = tmp_path / 'marker'
    assert query(index).returncode == 0  # signed here: its config is used

    options = rewrite_index(index, tmp_path / 'options.idx', cfg_options={
        'model._delete_': True, 'model.type': 'os.system',
        'model.command': f'touch {marker}'})
    res = query(options)
    assert res.returncode == 1
    assert 'options are never taken from an index' in res.stderr

    evil = tmp_path / 'evil.py'
    evil.write_text(evil_config(marker))
    named = rewrite_index(index, tmp_path / 'named.idx', config=str(evil),
                          config_files_sha256=config_files_sha256(
                              str(evil)))
    res = query(named)
    assert res.returncode == 1
    assert 'was not written by you on this machine' in res.stderr
    assert 'the config it names is not run' in res.stderr
    assert not marker.exists()

    # A foreign (unsigned) index answers with the model the user names.
    foreign = rewrite_index(index, tmp_path / 'foreign.idx',
                            signature='0' * 64)
    assert 'not written by you' in query(foreign).stderr
    res = query(foreign, '--config', RETRIEVAL_CFG)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len([line for line in res.stdout.splitlines()
                if line.count('\t') == 2]) == 3
    assert not marker.exists()


@pytest.mark.parametrize('change, message', [
    ('one_path_fewer', 'paths, 3 keys and 3 embedding rows disagree'),
    ('nan', 'embeddings must be finite floats'),
    ('dotdot', 'is not absolute and normalised'),
    ('relative', 'is not absolute and normalised'),
    ('twice', 'a video path appears twice'),
    ('dtype', "dtype 'fp64'"),
    ('sha', 'a fingerprint is not a SHA-256'),
    ('key', 'is not [size, mtime]'),
    ('options', 'cfg_options must be a mapping'),
])
def test_an_index_that_does_not_add_up_is_refused(built_index, tmp_path,
                                                  change, message):
    """Metadata and rows that disagree, NaN rows or odd paths: one line
    naming the file, exit 1, for query and for an incremental index run."""
    import json

    from conftest import call_main
    from safetensors import safe_open

    from stan_mmaction.apis.search_index import META_KEY
    root, ckpt, index = built_index
    with safe_open(index, framework='pt') as f:
        meta = json.loads(f.metadata()[META_KEY])
        emb = f.get_tensor('embeddings')
    paths, keys = meta['paths'], meta['keys']
    kwargs = dict(
        one_path_fewer=dict(paths=paths[:-1]),
        nan=dict(embeddings=emb.clone().fill_(float('nan'))),
        dotdot=dict(paths=[paths[0] + '/../x.mp4'] + paths[1:]),
        relative=dict(paths=['x.mp4'] + paths[1:]),
        twice=dict(paths=[paths[0]] * 3),
        dtype=dict(dtype='fp64'),
        sha=dict(config_sha256='x'),
        key=dict(keys=[[1.5, 2]] + keys[1:]),
        options=dict(cfg_options=['a=1']),
    )[change]
    bad = rewrite_index(index, tmp_path / 'bad.idx', **kwargs)
    for res in (query(bad), call_main('tools/search.py', [
            'index', str(root / 'videos'), '--config', RETRIEVAL_CFG,
            '--checkpoint', ckpt, '--index', bad])):
        assert res.returncode == 1
        assert res.stderr.startswith(f'{bad}: ') and message in res.stderr
        assert 'Traceback' not in res.stderr


def test_concurrent_index_runs_of_two_models_lose_nothing(
        built_index, tmp_path):
    """Two runs with different checkpoints on one index: the one that saves
    second (it did not set out to replace what is there now) refuses and
    writes nothing; the other's index is intact. A --rebuild replaces the
    index it started from."""
    import shutil

    from conftest import save_random_checkpoint

    from stan_mmaction.apis.search_index import SearchIndexError, VideoIndex
    root, ckpt, index = built_index
    target = str(tmp_path / 'shared.idx')
    shutil.copy(index, target)
    first = VideoIndex.load(target)
    other_ckpt = str(tmp_path / 'other.pth')
    save_random_checkpoint(RETRIEVAL_CFG, other_ckpt, seed=5)
    second = VideoIndex.for_model(RETRIEVAL_CFG, other_ckpt, None)
    second.entries = {p: dict(key=e['key'], embedding=-e['embedding'])
                      for p, e in first.entries.items()}
    with pytest.raises(SearchIndexError, match='written by another run '
                       'while this one worked; it is kept'):
        second.save_merged(target)  # started when there was no index
    kept = VideoIndex.load(target)
    assert kept.checkpoint_sha256 == first.checkpoint_sha256
    for path, entry in first.entries.items():
        assert torch.equal(kept.entries[path]['embedding'],
                           entry['embedding'])
    second.save_merged(target, replaces=first.fingerprint())  # --rebuild
    assert VideoIndex.load(target).checkpoint_sha256 == \
        second.checkpoint_sha256


def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    """Lists saved by editors that write a UTF-8 BOM: the first path is
    the path (it started with U+FEFF), in recognition lists and retrieval
    JSON."""
    from stan_mmaction.datasets import (StanVideoDataset,
                                        VideoTextRetrievalDataset)
    ann = tmp_path / 'list.txt'
    ann.write_bytes(b'\xef\xbb\xbfa.mp4 1\nb.mp4 2\n')
    data = StanVideoDataset(str(ann), [], data_prefix=dict(video='root'),
                            num_classes=8)
    assert data.get_data_info(0)['filename'] == osp.join('root', 'a.mp4')
    captions = tmp_path / 'captions.json'
    captions.write_bytes(b'\xef\xbb\xbf{"v.mp4": ["a caption"]}')
    data = VideoTextRetrievalDataset(str(captions), [],
                                     data_prefix=dict(video='root'))
    assert data.get_data_info(0)['filename'] == osp.join('root', 'v.mp4')


@pytest.mark.parametrize('content', [b'', b'\n\n  \n', b'\xef\xbb\xbf'])
def test_an_empty_annotation_file_is_named(tmp_path, content):
    from stan_mmaction.datasets import (AnnotationError, StanVideoDataset,
                                        VideoTextRetrievalDataset)
    ann = tmp_path / 'list.txt'
    ann.write_bytes(content)
    with pytest.raises(AnnotationError, match='list.txt: no samples'):
        StanVideoDataset(str(ann), [], num_classes=8)
    captions = tmp_path / 'captions.json'
    captions.write_bytes(content.strip(b'\n ') + b'{}')
    with pytest.raises(AnnotationError, match='captions.json: no samples'):
        VideoTextRetrievalDataset(str(captions), [],
                                  data_prefix=dict(video='root'))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_huge_batch_size_does_not_hang(built_index):
    """--batch-size 10**8 (the decoding workers' prefetch followed it and
    queued 10**8 requests before the first clip): the videos are embedded
    as with a small batch. A hang fails at the time limit."""
    import glob

    from stan_mmaction.apis import StanInferencer
    root, ckpt, _ = built_index
    inferencer = StanInferencer(RETRIEVAL_CFG, ckpt)
    paths = sorted(glob.glob(str(root / 'videos') + '/*.mp4'))
    big = {o.path: o.embedding
           for o in inferencer.iter_videos(paths, batch_size=10 ** 8)}
    small = {o.path: o.embedding
             for o in inferencer.iter_videos(paths, batch_size=1)}
    assert sorted(big) == paths and len(paths) == 3, big
    for path in paths:
        torch.testing.assert_close(big[path], small[path])


def extract(built_index, out, *extra, checkpoint=None, config=None):
    from conftest import call_main
    root, ckpt, _ = built_index
    return call_main('tools/extract_features.py', [
        config or RETRIEVAL_CFG, '--checkpoint', checkpoint or ckpt,
        '--videos', str(root / 'videos'), '--out-dir', str(out),
        '--dtype', 'fp32', *extra])


@pytest.mark.slow
def test_stats_json_written_and_an_unwritable_one_named(built_index,
                                                        tmp_path):
    """--stats-json: the run's numbers as JSON; a path that cannot be
    written (a file in the way) ends the run with one line naming it,
    after the features were written (nothing lost)."""
    import json
    good = tmp_path / 'stats.json'
    res = extract(built_index, tmp_path / 'feats', '--stats-json', str(good))
    assert res.returncode == 0, res.stderr[-2000:]
    stats = json.loads(good.read_text())
    assert stats['videos'] == 3 and stats['dtype'] == 'fp32'
    assert stats['videos_per_s'] > 0 and stats['compiled'] is False
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    res = extract(built_index, tmp_path / 'feats2', '--stats-json',
                  str(blocker / 'stats.json'))
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f'Error: {blocker}')
    assert len(list((tmp_path / 'feats2').glob('*.npy'))) == 3
    assert blocker.read_text() == 'x'


def test_outputs_that_cannot_be_written_are_one_line(
        built_index, tmp_path, monkeypatch):
    """An output folder that cannot be made (a file is in the way) and a
    full disk (no file named by the OS) end the tools with one line naming
    the path; nothing half-written is left."""
    from conftest import call_main
    root, ckpt, index = built_index
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    res = extract(built_index, blocker / 'feats')
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    assert res.stderr.startswith(f'Error: {blocker}')

    import errno
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', full)
    target = tmp_path / 'copy.idx'
    res = call_main('tools/search.py', [
        'index', str(root / 'videos'), '--config', RETRIEVAL_CFG,
        '--checkpoint', ckpt, '--index', str(target), '--dtype', 'fp32'])
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == \
        f'Error: {target}: No space left on device'
    assert not target.exists() and not list(tmp_path.glob('.copy.idx.*'))


def test_test_tool_work_dir_that_cannot_be_made(tmp_path, demo_workspace):
    """One line naming the folder, exit 1 (in this process: an exception
    other than the tool's SystemExit would fail the test); from the demo's
    workspace, so that its data is there (it is checked first)."""
    from conftest import call_main
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    res = call_main('tools/test.py', [TINY, 'none.pth', '--work-dir',
                                      str(blocker / 'work')],
                    cwd=demo_workspace)
    assert res.returncode == 1, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith(
        f'Error: {blocker}')
    assert 'Traceback' not in res.stderr


@pytest.mark.parametrize('text, message', [
    ('{not json', 'manifest.json: not a manifest this tool wrote'),
    ('[1, 2]', 'not a manifest this tool wrote (a list)'),
    ('{"dtype": "fp64"}', "manifest.json: dtype 'fp64' is not fp32, bf16"),
])
def test_a_malformed_manifest_is_named(built_index, tmp_path, text,
                                       message):
    out = tmp_path / 'feats'
    out.mkdir()
    (out / 'manifest.json').write_text(text)
    for extra in ([], ['--dtype', 'fp32']):
        res = extract(built_index, out, *extra)
        assert res.returncode == 1 and message in res.stderr, res.stderr
        assert '--dtype fp64' not in res.stderr  # the file is blamed
    assert extract(built_index, out, '--overwrite').returncode == 0


def test_extract_manifest_and_permissions(built_index, tmp_path):
    """A refused checkpoint leaves the folder untouched (no manifest); the
    same config moved elsewhere is the same model; files are written with
    the umask's permissions (safetensors made them 0600)."""
    import shutil

    from conftest import call_main

    from stan_mmaction.utils.checkpoint import TRUST_ENV
    root, ckpt, index = built_index
    assert TRUST_ENV not in os.environ
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Called(print, 'ran')}, str(evil))
    out = tmp_path / 'feats'
    res = extract(built_index, out, checkpoint=str(evil))
    assert res.returncode == 1 and 'refused to unpickle' in res.stderr
    assert not (out / 'manifest.json').exists()

    assert extract(built_index, out).returncode == 0
    moved = tmp_path / 'moved'
    shutil.copytree(osp.dirname(RETRIEVAL_CFG), moved / 'demo')
    shutil.copytree(osp.join(REPO_ROOT, 'configs', '_base_'),
                    moved / '_base_')
    res = extract(built_index, out, config=str(
        moved / 'demo' / osp.basename(RETRIEVAL_CFG)))
    assert res.returncode == 0, res.stderr[-2000:]
    assert '3 of 3 embedding(s) already' in res.stdout

    mask = os.umask(0)
    os.umask(mask)
    target = tmp_path / 'perm.idx'
    res = call_main('tools/search.py', [
        'index', str(root / 'videos'), '--config', RETRIEVAL_CFG,
        '--checkpoint', ckpt, '--index', str(target), '--dtype', 'fp32'])
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask
    for npy in out.glob('*.npy'):
        assert os.stat(npy).st_mode & 0o777 == 0o666 & ~mask


class Called:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_a_state_dict_entry_that_is_not_a_tensor(tmp_path, monkeypatch):
    """A checkpoint whose state_dict holds an array (loadable data, not
    weights): the demo and the library say which key, no traceback."""
    import numpy as np
    from conftest import call_main

    from stan_mmaction.apis import init_model
    from stan_mmaction.utils.checkpoint import CheckpointContentError
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'backbone.proj': np.zeros(3)}}, str(bad))
    with pytest.raises(CheckpointContentError,
                       match=r"state_dict\['backbone.proj'\] is a "
                       'numpy.ndarray, not a tensor'):
        init_model(TINY, str(bad))
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(f'c{i}' for i in range(8)) + '\n')
    res = call_main('demo/demo.py', ['v.mp4', TINY, str(bad),
                                     '--label-map', str(labels)])
    assert res.returncode == 1
    assert "state_dict['backbone.proj'] is a numpy.ndarray" in res.stderr


def test_train_tool_refuses_a_payload_pretrained_in_one_line(
        tmp_path, demo_workspace):
    from conftest import call_main
    marker = tmp_path / 'marker'
    evil = tmp_path / 'evil.pt'
    torch.save({'x': Called(exec, f"open({str(marker)!r}, 'w')")},
               str(evil))
    res = call_main('tools/train.py', [
        TINY, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        f'model.backbone.pretrained={evil}'], cwd=demo_workspace)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('Error: ') and 'refused to unpickle' in last
    assert 'Traceback' not in res.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_our_train_tool_resume_through_last_checkpoint(trained, tmp_path,
                                                       demo_workspace):
    """tools/train.py --resume (auto): last_checkpoint names a checkpoint
    whose config text runs a command; training goes on, nothing runs."""
    import shutil

    from conftest import call_main
    marker = tmp_path / 'marker'
    work = tmp_path / 'work'
    work.mkdir()
    tampered(trained, work / 'epoch_1.pth', evil_config(marker))
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    res = call_main('tools/train.py', [
        TINY, '--work-dir', str(work), '--resume', '--cfg-options',
        'train_cfg.max_epochs=2'], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'resumed epoch: 1' in res.stdout + res.stderr
    assert (work / 'epoch_2.pth').exists() and not marker.exists()
    shutil.rmtree(work)


def test_a_bad_index_key_file_is_named(tmp_path, monkeypatch):
    """The signing key file of another format is not silently replaced
    (indexes it signed would stop verifying): a named error."""
    from stan_mmaction.apis.search_index import (INDEX_KEY_ENV,
                                                 SearchIndexError, index_key)
    key = tmp_path / 'key'
    monkeypatch.setenv(INDEX_KEY_ENV, str(key))
    made = index_key()
    assert len(made) == 32 and index_key() == made
    assert os.stat(key).st_mode & 0o777 == 0o600
    key.write_bytes(b'short')
    with pytest.raises(SearchIndexError, match='not an index key'):
        index_key()
    assert key.read_bytes() == b'short'  # nothing overwritten
