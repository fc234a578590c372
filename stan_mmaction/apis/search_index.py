"""The text-to-video search index (``tools/search.py``): embeddings in a
format that cannot run code, tied to the exact model that made them.

File format (version 2): one ``.safetensors`` file holding the tensor
``embeddings`` ``(N, E)`` and, in its metadata, a JSON document with the
video paths, their file keys (size, mtime), the config path and options, the
checkpoint path, the fingerprints of the model (the SHA-256 of the fully
resolved config, every ``_base_`` merged and options applied; the SHA-256
of the bytes of the config file and its ``_base_`` files, found without
running them; the SHA-256 of the checkpoint's content) and the dtype the
embeddings were computed in (``fp32``, ``bf16``, ``fp16``; indexes written
before it was recorded were fp32). Embeddings are stored in fp32 whatever
they were computed in; an index never mixes dtypes. Reading it parses JSON
and raw tensors only, and checks them (:meth:`VideoIndex.load`); earlier
versions were pickles and are refused, not unpickled.

An index is data: nothing in it is merged into a config or built. A query
uses the config (and options) the user names, or the config file the index
names only when the index was written by this user on this machine (an
HMAC of its metadata with a key kept in the user's cache,
:func:`index_key`: a fingerprint alone could be recomputed by anyone) and
the bytes of that file and its bases still have the recorded hash
(:func:`config_files_sha256`, computed without executing them).
"""
import ast
import hashlib
import hmac
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import torch

from ..utils.atomic import atomic_path

INDEX_VERSION = 2
META_KEY = 'stan_mmaction_index'


class SearchIndexError(ValueError):
    """A file that is not a readable search index of this version."""


def config_sha256(config: str, cfg_options: Optional[dict] = None) -> str:
    """SHA-256 of the fully resolved config (bases merged, options applied):
    editing a ``_base_`` file changes it, moving the files does not."""
    from ..utils import load_config
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _literal_bases(path: str) -> List[str]:
    """The ``_base_`` entries of a config file, read as literals (MMEngine's
    own reader evaluates the expression)."""
    if not path.endswith('.py'):
        from mmengine.fileio import load
        bases = load(path).get('_base_', []) if path.endswith(
            ('.json', '.yaml', '.yml')) else []
    else:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read())
        bases = []
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == '_base_'
                    for t in node.targets):
                bases = ast.literal_eval(node.value)
    bases = [bases] if isinstance(bases, str) else bases
    if not (isinstance(bases, list) and all(isinstance(b, str)
                                            for b in bases)):
        raise ValueError(f'{path}: _base_ is not a literal list of paths')
    return bases


def config_files_sha256(config: str) -> str:
    """SHA-256 of the bytes of a config file and of every ``_base_`` file
    it names, recursively, found with nothing executed (``pkg::`` bases
    resolved as MMEngine resolves them).

    Raises:
        OSError, ValueError, SyntaxError: a file is missing or its
            ``_base_`` is not a literal.
    """
    from mmengine.config import Config
    digest = hashlib.sha256()
    seen: Set[str] = set()

    def visit(path: str) -> None:
        path = osp.realpath(path)
        if path in seen:
            return
        seen.add(path)
        with open(path, 'rb') as f:
            data = f.read()
        digest.update(len(data).to_bytes(8, 'little') + data)
        for base in _literal_bases(path):
            visit(Config._get_cfg_path(base, path)[0])

    visit(config)
    return digest.hexdigest()


#: Environment variable naming the index key file (default:
#: ``~/.cache/stan_mmaction/index_key``).
INDEX_KEY_ENV = 'STAN_MMACTION_INDEX_KEY'


def index_key() -> bytes:
    """This user's key for signing indexes: 32 random bytes in a file only
    the user can read, made on first use."""
    path = os.environ.get(INDEX_KEY_ENV) or osp.join(
        osp.expanduser('~'), '.cache', 'stan_mmaction', 'index_key')
    try:
        with open(path, 'rb') as f:
            key = f.read()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first (or a bad one)
        with open(path, 'rb') as f:
            key = f.read()
        if len(key) != 32:
            raise SearchIndexError(f'{path}: not an index key (32 bytes); '
                                   'remove it to make a new one')
        return key
    with os.fdopen(fd, 'wb') as f:
        f.write(key)
    return key


def _signature(meta: dict) -> str:
    """HMAC-SHA256 of what a query may act on without the user naming it
    (the model's files and fingerprints)."""
    signed = {k: meta.get(k) for k in (
        'version', 'config', 'checkpoint', 'cfg_options', 'config_sha256',
        'config_files_sha256', 'checkpoint_sha256')}
    text = json.dumps(signed, sort_keys=True)
    return hmac.new(index_key(), text.encode(), hashlib.sha256).hexdigest()


def file_sha256(path: Optional[str], chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's content (``'none'`` for no file)."""
    if path is None:
        return 'none'
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def file_key(path: str) -> List[int]:
    """What marks a video as changed: size and modification time."""
    st = os.stat(path)
    return [st.st_size, int(st.st_mtime_ns)]


@dataclass
class VideoIndex:
    """Embeddings of videos plus the model that made them."""
    config: str
    checkpoint: Optional[str]
    cfg_options: Optional[dict]
    config_sha256: str
    checkpoint_sha256: str
    dtype: str = 'fp32'
    # None: written before it was recorded (the config must be named).
    config_files_sha256: Optional[str] = None
    # True: signed with this user's key (written here by this user).
    signed: bool = False
    entries: Dict[str, dict] = field(default_factory=dict)  # path -> key, emb
    failed: List[str] = field(default_factory=list)
    # Paths this run took out (deleted or now unreadable files): a merge
    # with the file on disk must not bring them back.
    removed: set = field(default_factory=set)

    @classmethod
    def for_model(cls, config: str, checkpoint: Optional[str],
                  cfg_options: Optional[dict],
                  dtype: str = 'fp32') -> 'VideoIndex':
        return cls(config=config, checkpoint=checkpoint,
                   cfg_options=cfg_options,
                   config_sha256=config_sha256(config, cfg_options),
                   checkpoint_sha256=file_sha256(checkpoint), dtype=dtype,
                   config_files_sha256=config_files_sha256(config))

    def same_model(self, other: 'VideoIndex') -> List[str]:
        """What differs between the models of two indexes (empty: none)."""
        why = []
        if self.config_sha256 != other.config_sha256:
            why.append(f'the resolved config differs ({self.config} then, '
                       f'{other.config} now; a _base_ file or an option may '
                       'have changed)')
        if self.checkpoint_sha256 != other.checkpoint_sha256:
            why.append(f'the checkpoint differs ({self.checkpoint} then, '
                       f'{other.checkpoint} now; same path or not, its '
                       'content changed)')
        return why

    def dtype_mismatch(self, dtype: str, run: str,
                       rebuild: bool = False) -> Optional[str]:
        """The message refusing to mix embeddings computed in ``dtype``
        into this index (None if that is the index's dtype); ``run`` names
        what would compute them ('this query'); ``rebuild``: also suggest
        ``--rebuild``."""
        if dtype == self.dtype:
            return None
        return (f'the index holds embeddings computed in {self.dtype}; '
                f'{run} would compute them in {dtype}, and an index never '
                f'mixes dtypes: pass --dtype {self.dtype} (or no --dtype, '
                'which uses the index\'s)' +
                (f', or --rebuild to re-embed everything in {dtype}'
                 if rebuild else ''))

    def save(self, path: str) -> None:
        """Write atomically (``utils.atomic.atomic_path``)."""
        from safetensors.torch import save_file
        paths = sorted(self.entries)
        embeddings = torch.stack([self.entries[p]['embedding'].float()
                                  for p in paths]) if paths else \
            torch.zeros(0, 0)
        meta = dict(version=INDEX_VERSION, config=self.config,
                    checkpoint=self.checkpoint, cfg_options=self.cfg_options,
                    config_sha256=self.config_sha256,
                    checkpoint_sha256=self.checkpoint_sha256,
                    dtype=self.dtype,
                    config_files_sha256=self.config_files_sha256,
                    paths=paths,
                    keys=[self.entries[p]['key'] for p in paths],
                    failed=self.failed)
        meta['signature'] = _signature(meta)
        with atomic_path(path) as tmp:
            save_file(dict(embeddings=embeddings.contiguous()), tmp,
                      metadata={META_KEY: json.dumps(meta)})

    def save_merged(self, path: str,
                    replaces: Optional[str] = None) -> None:
        """Save, merged with what another run of the same model saved to
        ``path`` since (under a file lock, so concurrent runs on one index
        lose nothing): entries of both, this run's winning for a path it
        (re-)embedded or removed.

        Args:
            replaces (str, optional): the fingerprint
                (:meth:`fingerprint`) of the index this run was started to
                replace (``--rebuild``); that one is overwritten.

        Raises:
            SearchIndexError: ``path`` holds an index of another model or
                dtype that this run did not set out to replace (another run
                wrote it meanwhile): nothing is written, nothing of it lost.
        """
        from ..utils.atomic import file_lock
        with file_lock(path):
            if os.path.isfile(path):
                try:
                    disk = VideoIndex.load(path)
                except SearchIndexError:
                    disk = None
                if disk is not None and not disk.same_model(self) and \
                        disk.dtype == self.dtype:
                    merged = {p: e for p, e in disk.entries.items()
                              if p not in self.removed}
                    merged.update(self.entries)
                    self.entries = merged
                    self.failed = sorted(set(disk.failed) | set(self.failed))
                elif disk is not None and disk.fingerprint() != replaces:
                    raise SearchIndexError(
                        f'{path} now holds an index of another model or '
                        f'dtype ({disk.config}, {disk.dtype}), written by '
                        'another run while this one worked; it is kept and '
                        'nothing of this run was written: use another '
                        '--index, or --rebuild once the other run is done')
            self.save(path)

    def fingerprint(self) -> str:
        """The model and dtype of this index, as one string."""
        return f'{self.config_sha256}/{self.checkpoint_sha256}/{self.dtype}'

    @classmethod
    def load(cls, path: str) -> 'VideoIndex':
        """Read an index; nothing in the file is executed.

        Raises:
            SearchIndexError: not a version-2 index (older pickled indexes
                included: they are not unpickled).
        """
        from safetensors import safe_open
        try:
            with safe_open(path, framework='pt') as f:
                meta = json.loads((f.metadata() or {})[META_KEY])
                embeddings = f.get_tensor('embeddings')
        except Exception as err:  # noqa: BLE001  (any malformed file)
            raise SearchIndexError(
                f'{path} is not a search index of this version (safetensors '
                'with stan_mmaction metadata). Indexes written by earlier '
                'versions were pickles, which are not read because '
                'unpickling can run code: build it again with tools/'
                f'search.py index ... --rebuild ({type(err).__name__})'
            ) from None
        if not isinstance(meta, dict) or meta.get('version') != \
                INDEX_VERSION:
            version = meta.get('version') if isinstance(meta, dict) else None
            raise SearchIndexError(
                f'{path}: index version {version}, this tool '
                f'reads {INDEX_VERSION}; rebuild it')
        _check_meta(path, meta, embeddings)
        entries = {p: dict(key=list(k), embedding=embeddings[i])
                   for i, (p, k) in enumerate(zip(meta['paths'],
                                                  meta['keys']))}
        return cls(config=meta['config'], checkpoint=meta['checkpoint'],
                   cfg_options=meta['cfg_options'],
                   config_sha256=meta['config_sha256'],
                   checkpoint_sha256=meta['checkpoint_sha256'],
                   dtype=meta.get('dtype', 'fp32'), entries=entries,
                   failed=list(meta['failed']),
                   config_files_sha256=meta.get('config_files_sha256'),
                   signed=isinstance(meta.get('signature'), str)
                   and hmac.compare_digest(meta['signature'],
                                           _signature(meta)))


def _check_meta(path: str, meta: dict, embeddings: torch.Tensor) -> None:
    """An index's metadata and embeddings as the tools write them, or a
    :class:`SearchIndexError` naming the file and the field."""

    def bad(what: str):
        raise SearchIndexError(f'{path}: {what}; not an index this tool '
                               'wrote (rebuild it)')

    def is_sha(value, optional=False):
        return (optional and value is None) or (
            isinstance(value, str) and (value == 'none' or (
                len(value) == 64 and all(c in '0123456789abcdef'
                                         for c in value))))

    for key in ('config', 'checkpoint', 'paths', 'keys', 'failed',
                'config_sha256', 'checkpoint_sha256'):
        if key not in meta:
            bad(f'no {key!r}')
    if not isinstance(meta['config'], str) or not (
            meta['checkpoint'] is None or isinstance(meta['checkpoint'],
                                                     str)):
        bad('config and checkpoint must be paths')
    if not (meta.get('cfg_options') is None or
            isinstance(meta['cfg_options'], dict)):
        bad('cfg_options must be a mapping')
    if not (is_sha(meta['config_sha256'])
            and is_sha(meta['checkpoint_sha256'])
            and is_sha(meta.get('config_files_sha256'), optional=True)):
        bad('a fingerprint is not a SHA-256')
    if meta.get('dtype', 'fp32') not in ('fp32', 'bf16', 'fp16'):
        bad(f'dtype {meta.get("dtype")!r}')
    paths, keys = meta['paths'], meta['keys']
    if not (isinstance(paths, list) and isinstance(keys, list)):
        bad('paths and keys must be lists')
    if not (isinstance(meta['failed'], list)
            and all(isinstance(f, str) for f in meta['failed'])):
        bad('failed must be a list of messages')
    for p in paths:
        if not isinstance(p, str) or not osp.isabs(p) or \
                osp.normpath(p) != p or '\x00' in p:
            bad(f'video path {p!r} is not absolute and normalised')
    if len(set(paths)) != len(paths):
        bad('a video path appears twice')
    for k in keys:
        if not (isinstance(k, list) and len(k) == 2 and all(
                type(v) is int and v >= 0 for v in k)):
            bad(f'file key {k!r} is not [size, mtime]')
    rows = embeddings.shape[0] if embeddings.dim() == 2 else -1
    if paths and not (len(paths) == len(keys) == rows):
        bad(f'{len(paths)} paths, {len(keys)} keys and {rows} embedding '
            'rows disagree')
    if not paths and (keys or embeddings.numel()):
        bad('embeddings or keys without paths')
    if not embeddings.is_floating_point() or \
            not bool(torch.isfinite(embeddings).all()):
        bad('embeddings must be finite floats')
