"""The text-to-video search index (``tools/search.py``): embeddings in a
format that cannot run code, tied to the exact model that made them.

File format (version 2): one ``.safetensors`` file holding the tensor
``embeddings`` ``(N, E)`` and, in its metadata, a JSON document with the
video paths, their file keys (size, mtime), the config path and options, the
checkpoint path, the two fingerprints of the model (the SHA-256 of the
fully resolved config, every ``_base_`` merged and options applied, and the
SHA-256 of the checkpoint's content) and the dtype the embeddings were
computed in (``fp32``, ``bf16``, ``fp16``; indexes written before it was
recorded were fp32). Embeddings are stored in fp32 whatever they were
computed in; an index never mixes dtypes. Reading it parses JSON and raw
tensors only; earlier versions were pickles and are refused, not unpickled.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

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
                   checkpoint_sha256=file_sha256(checkpoint), dtype=dtype)

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
                    dtype=self.dtype, paths=paths,
                    keys=[self.entries[p]['key'] for p in paths],
                    failed=self.failed)
        with atomic_path(path) as tmp:
            save_file(dict(embeddings=embeddings.contiguous()), tmp,
                      metadata={META_KEY: json.dumps(meta)})

    def save_merged(self, path: str) -> None:
        """Save, merged with what another run of the same model saved to
        ``path`` since (under a file lock, so concurrent runs on one index
        lose nothing): entries of both, this run's winning for a path it
        (re-)embedded or removed. An index of another model or dtype on disk
        is replaced (this run was started with ``--rebuild``)."""
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
            self.save(path)

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
        if meta.get('version') != INDEX_VERSION:
            raise SearchIndexError(
                f'{path}: index version {meta.get("version")}, this tool '
                f'reads {INDEX_VERSION}; rebuild it')
        entries = {p: dict(key=list(k), embedding=embeddings[i])
                   for i, (p, k) in enumerate(zip(meta['paths'],
                                                  meta['keys']))}
        return cls(config=meta['config'], checkpoint=meta['checkpoint'],
                   cfg_options=meta['cfg_options'],
                   config_sha256=meta['config_sha256'],
                   checkpoint_sha256=meta['checkpoint_sha256'],
                   dtype=meta.get('dtype', 'fp32'), entries=entries,
                   failed=list(meta['failed']))
