"""Property-based tests (hypothesis) of every reader of files that come
from elsewhere: recognition lists, retrieval annotations (JSON, DiDeMo,
LSMDC), search-index metadata, ``manifest.json``, HuggingFace
``config.json`` and the checkpoint loader. The only outcomes allowed: a
correct parse, or the project's named error; never another exception, a
crash, a hang or a command run (a marker file says). Examples are few and
small, and each has a deadline, for 2 cores."""
import io
import json
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, load_script
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stan_mmaction.datasets import AnnotationError, VideoTextRetrievalDataset
from stan_mmaction.datasets.annotations import parse_label_list, read_text

SETTINGS = settings(
    max_examples=60, deadline=2000, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.function_scoped_fixture])

# Text made of what annotation files are made of, and then anything.
LINE_PIECES = st.sampled_from(
    ['a.mp4', 'dir/b c.mp4', ' ', '\t', '0', '7', '-1', '99', '3.5', 'x',
     '\ufeff', '"', ',', '{', '}', '[', ']', ':', '\\', 'é', '\x00'])
TEXTS = st.one_of(
    st.lists(st.lists(LINE_PIECES, max_size=6).map(''.join),
             max_size=6).map('\n'.join),
    st.text(max_size=200))


@SETTINGS
@given(data=st.one_of(TEXTS.map(lambda t: t.encode('utf-8', 'replace')),
                      st.binary(max_size=120)),
       num_classes=st.one_of(st.none(), st.integers(1, 10)),
       multi_class=st.booleans())
def test_recognition_lists(tmp_path, data, num_classes, multi_class):
    path = tmp_path / 'list.txt'
    path.write_bytes(data)
    try:
        text = read_text(str(path))
        rows = list(parse_label_list(str(path), text, num_classes,
                                     multi_class))
    except AnnotationError as err:
        assert str(err).startswith(str(path))
        return
    for video, label, line in rows:
        assert isinstance(video, str) and video.strip() == video and video
        labels = label if multi_class else [label]
        assert all(type(v) is int and v >= 0 for v in labels)
        if num_classes is not None:
            assert all(v < num_classes for v in labels)
        assert 1 <= line <= text.count('\n') + 1


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
              st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner,
                                            max_size=4)),
    max_leaves=12)
CAPTION_FILES = st.one_of(
    st.dictionaries(st.sampled_from(['v1.mp4', 'v2', 'd/v3.mp4', '']),
                    st.one_of(st.text(max_size=20),
                              st.lists(st.text(max_size=20), max_size=3),
                              JSON_VALUES), max_size=3).map(json.dumps),
    JSON_VALUES.map(json.dumps), TEXTS)


@pytest.fixture(scope='module')
def retrieval_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('ann')
    sets = {}
    for fmt in ('json', 'didemo', 'lsmdc'):
        path = root / f'ann.{fmt}'
        path.write_text('{}')
        sets[fmt] = VideoTextRetrievalDataset(
            str(path), [], data_prefix=dict(video='root'), ann_format=fmt,
            lazy_init=True)
    return sets


CSV_LIKE = st.lists(st.lists(st.sampled_from(
    ['v1', 'v2.avi', '\t', 'a caption', '', '  ', 'x\ty']),
    max_size=6).map(''.join), max_size=4).map('\n'.join)


@SETTINGS
@given(fmt=st.sampled_from(['json', 'didemo', 'lsmdc']),
       text=st.one_of(CAPTION_FILES, CSV_LIKE), test_mode=st.booleans())
def test_retrieval_annotations(retrieval_sets, fmt, text, test_mode):
    dataset = retrieval_sets[fmt]
    with open(dataset.ann_file, 'w', encoding='utf-8') as f:
        f.write(text)
    dataset.test_mode = test_mode
    try:
        samples = dataset.load_data_list()
    except AnnotationError as err:
        assert str(err).startswith(dataset.ann_file)
        return
    assert samples
    for sample in samples:
        assert sample['filename'].startswith('root')
        assert sample['text'] and all(isinstance(c, str) and c.strip()
                                      for c in sample['text'])


def _index_bytes(meta_json: str, embeddings: torch.Tensor) -> bytes:
    from safetensors.torch import save

    from stan_mmaction.apis.search_index import META_KEY
    return save(dict(embeddings=embeddings), metadata={META_KEY: meta_json})


SHA = '0' * 64
VALID_META = dict(version=2, config='/c.py', checkpoint=None,
                  cfg_options=None, config_sha256=SHA,
                  checkpoint_sha256='none', dtype='fp32',
                  paths=['/v/a.mp4'], keys=[[1, 2]], failed=[])


@SETTINGS
@given(changes=st.dictionaries(
    st.sampled_from(sorted(VALID_META) + ['config_files_sha256',
                                          'signature']),
    JSON_VALUES, max_size=3),
    rows=st.integers(0, 3), width=st.integers(0, 4),
    special=st.sampled_from([None, 'nan', 'inf', 'int']),
    raw=st.one_of(st.none(), st.binary(max_size=64), TEXTS))
def test_index_metadata(tmp_path, changes, rows, width, special, raw):
    from stan_mmaction.apis.search_index import SearchIndexError, VideoIndex
    path = tmp_path / 'x.idx'
    if raw is not None:
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    else:
        emb = torch.randn(rows, width)
        if special == 'nan' and emb.numel():
            emb[0, 0] = float('nan')
        elif special == 'inf' and emb.numel():
            emb[-1, -1] = float('inf')
        elif special == 'int':
            emb = emb.long()
        meta = dict(VALID_META, **changes)
        path.write_bytes(_index_bytes(json.dumps(meta), emb))
    try:
        index = VideoIndex.load(str(path))
    except SearchIndexError as err:
        assert str(err).startswith(str(path))
        return
    assert len(index.entries) == len(set(index.entries))
    for video, entry in index.entries.items():
        assert osp.isabs(video) and osp.normpath(video) == video
        assert torch.isfinite(entry['embedding']).all()
        assert entry['embedding'].is_floating_point()
    assert index.dtype in ('fp32', 'bf16', 'fp16')


@pytest.fixture(scope='module')
def extract_tool():
    return load_script('tools/extract_features.py')


@SETTINGS
@given(content=st.one_of(JSON_VALUES.map(json.dumps), TEXTS,
                         st.binary(max_size=64).map(
                             lambda b: b.decode('latin-1')),
                         st.dictionaries(st.sampled_from(
                             ['dtype', 'config', 'format', 'window']),
                             JSON_VALUES, max_size=3).map(json.dumps)))
def test_manifest(tmp_path, extract_tool, content):
    (tmp_path / 'manifest.json').write_text(content, encoding='utf-8',
                                            errors='surrogateescape')
    try:
        old = extract_tool.read_manifest(str(tmp_path))
    except SystemExit as err:
        assert str(tmp_path / 'manifest.json') in str(err.code)
        return
    assert isinstance(old, dict) and old['dtype'] in ('fp32', 'bf16', 'fp16')


HF_CONFIGS = st.one_of(
    JSON_VALUES.map(json.dumps), TEXTS,
    st.fixed_dictionaries({}, optional={
        'model_type': st.sampled_from(['clip', 'bert', 3]),
        'projection_dim': JSON_VALUES,
        'vision_config': st.one_of(JSON_VALUES, st.dictionaries(
            st.sampled_from(['hidden_size', 'num_hidden_layers',
                             'patch_size', 'hidden_act']), JSON_VALUES)),
        'text_config': st.one_of(JSON_VALUES, st.dictionaries(
            st.sampled_from(['hidden_size', 'vocab_size', 'hidden_act']),
            JSON_VALUES)),
    }).map(json.dumps))


@SETTINGS
@given(text=HF_CONFIGS)
def test_huggingface_config(tmp_path, text):
    from stan_mmaction.models.checkpoint_formats import (HFConfigError,
                                                         check_hf_config,
                                                         hf_config_sizes,
                                                         hf_quick_gelu,
                                                         is_hf_clip_folder,
                                                         read_hf_config)
    from stan_mmaction.models.clip import get_arch
    (tmp_path / 'config.json').write_text(text)
    assert is_hf_clip_folder(str(tmp_path)) in (True, False)
    try:
        config = read_hf_config(str(tmp_path))
    except HFConfigError as err:
        assert str(err).startswith(str(tmp_path / 'config.json'))
        return
    sizes = hf_config_sizes(config)
    assert all(v is None or (type(v) is int and v > 0)
               for v in sizes.values())
    assert hf_quick_gelu(config) in (None, True, False)
    try:
        check_hf_config(config, get_arch('tiny'), 'tiny', 'config.json')
    except ValueError as err:
        assert 'does not match arch' in str(err)


class _Call:
    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


def _globals():
    import collections

    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:
        from numpy.core.multiarray import _reconstruct, scalar
    # Forbidden callables here are harmless ones, or write_marker: a
    # regression must not run random text as a command.
    return [np.dtype, _reconstruct, scalar, np.ndarray, bytes, bytearray,
            collections.OrderedDict, HistoryBuffer, getattr, write_marker,
            print, torch.tensor, torch.Tensor, np.frombuffer, np.array,
            set, frozenset, slice, complex]


MARKER = osp.join(__import__('tempfile').mkdtemp(), 'marker')


def write_marker(*args):
    """Not an allowed global: the loader must never call it."""
    with open(MARKER, 'w') as f:
        f.write(repr(args))


DTYPES = st.sampled_from(['f8', '<f4', '>i2', 'u1', '?', 'c16', 'O', 'V8',
                          'S3', 'U2', 'M8[s]', [('a', 'O')],
                          [('a', 'f4'), ('b', 'i8')], 'f2'])


def _pickled_items():
    leaves = st.one_of(
        st.none(), st.integers(-3, 3), st.text(max_size=5),
        st.binary(max_size=16),
        st.builds(lambda d, n: np.zeros(n, dtype=d), DTYPES,
                  st.integers(0, 3)),
        st.builds(lambda t: torch.arange(t), st.integers(0, 4)),
        st.builds(np.dtype, DTYPES),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=4), inner, max_size=3),
            st.builds(_Call, st.sampled_from(_globals()),
                      st.lists(inner, max_size=3).map(tuple),
                      st.one_of(st.none(), inner)),
        ),
        max_leaves=8)


@settings(max_examples=120, deadline=3000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(obj=_pickled_items(),
       truncate=st.one_of(st.none(), st.integers(0, 400)))
def test_checkpoint_loader(tmp_path, obj, truncate):
    """Random pickles of allowed and forbidden globals, numpy dtypes of
    every kind and odd BUILD states, whole or truncated: loaded as plain
    data, or refused with CheckpointError; a forbidden callable (one that
    writes a marker) never runs."""
    from stan_mmaction.utils.checkpoint import CheckpointError, safe_torch_load
    buf = io.BytesIO()
    try:
        torch.save(dict(meta=obj), buf)
    except Exception:  # noqa: BLE001  (not picklable: nothing to test)
        return
    data = buf.getvalue()
    if truncate is not None:
        data = data[:truncate]
    path = tmp_path / 'x.pth'
    path.write_bytes(data)
    try:
        loaded = safe_torch_load(str(path))
    except CheckpointError as err:
        assert str(err).startswith(str(path))
        event(type(err).__name__)
        return
    finally:
        assert not osp.exists(MARKER)
    event('loaded')
    _assert_plain(loaded)


def _assert_plain(obj):
    """What a load may return: containers, scalars, tensors, plain-kind
    arrays and dtypes, history buffers."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, dict):
        for v in obj.values():
            _assert_plain(v)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _assert_plain(v)
    elif isinstance(obj, np.ndarray):
        assert type(obj) is np.ndarray and obj.dtype.kind in 'biufc'
        assert obj.dtype.fields is None
        obj.sum()  # touches every element
    elif isinstance(obj, np.generic):
        assert obj.dtype.kind in 'biufc'
    elif isinstance(obj, np.dtype):
        assert obj.kind in 'biufc'
    else:
        assert obj is None or isinstance(obj, (
            bool, int, float, complex, str, bytes, bytearray, torch.Tensor,
            slice, HistoryBuffer)), type(obj)


def test_the_fuzzed_readers_are_every_reader_named_in_the_docs():
    """The security page lists these readers; a new reader of outside
    files gets a property test here and a row there."""
    text = open(osp.join(REPO_ROOT, 'docs', 'security.md')).read()
    for name in ('recognition lists', 'retrieval annotations',
                 'search index', 'manifest.json', 'config.json',
                 'checkpoints'):
        assert name in text, name
