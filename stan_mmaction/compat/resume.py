"""Repair 8: resume.

Breakage: ``--resume`` (auto) trusts ``last_checkpoint`` alone: without it, or
with it emptied, training restarts at epoch 1 and overwrites the checkpoints of
the earlier run; and ``CheckpointHook`` writes it in place with ``open``. ->
:func:`patch_resume` (the newest ``epoch_N`` / ``iter_N`` checkpoint when
``last_checkpoint`` is missing, empty or stale; ``last_checkpoint`` written
atomically)

Detected by: mmengine's ``find_latest_checkpoint`` is not ours; the hook's
``open(save_file, 'w')`` in ``CheckpointHook._save_checkpoint_with_step`` (read
from its source; warns when the text is not found).

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_resume_finds_nothing_without_last_checkpoint_unrepaired,
test_resume_falls_back_to_the_newest_checkpoint,
test_interrupted_last_checkpoint_write_keeps_the_old_one.
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional

from .atomic_local_writes import _atomic_write

_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class _AtomicTextFile:
    """``open(path, 'w')`` for ``with ... as f: f.write(text)``: the text
    goes to a temporary file that replaces ``path`` on a clean exit."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.parts: List[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _atomic_write(self.path, ''.join(self.parts), 'w',
                          encoding='utf-8')
        return False


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's checkpoint hook module."""
    if 'w' in mode and osp.basename(os.fspath(file)) == 'last_checkpoint':
        return _AtomicTextFile(file)
    return open(file, mode, *args, **kwargs)


def find_latest_checkpoint(path: str) -> Optional[str]:
    """The checkpoint ``--resume`` should continue from: the file
    ``last_checkpoint`` names when it exists, else the newest ``epoch_N.pth``
    / ``iter_N.pth`` in ``path`` (newest written, then highest N); None
    when there is none (a fresh start overwrites nothing)."""
    from mmengine.logging import print_log
    save_file = osp.join(path, 'last_checkpoint')
    named = None
    if osp.isfile(save_file):
        with open(save_file) as f:
            named = f.read().strip() or None
        if named is not None and osp.isfile(named):
            return named
    found = []
    if osp.isdir(path):
        for name in os.listdir(path):
            m = _CHECKPOINT_NAME.match(name)
            if m:
                full = osp.join(path, name)
                found.append((osp.getmtime(full), int(m.group(2)), full))
    if not found:
        return None
    latest = max(found)[2]
    why = 'is missing' if not osp.isfile(save_file) else (
        'is empty' if named is None else f'names a missing file {named}')
    print_log(f'{save_file} {why}; resuming from the newest checkpoint in '
              f'{path}: {latest}', logger='current', level=logging.WARNING)
    return latest


def patch_resume() -> bool:
    import inspect

    import mmengine.hooks.checkpoint_hook as hook_module
    import mmengine.runner.checkpoint as checkpoint_module
    import mmengine.runner.runner as runner_module
    if runner_module.find_latest_checkpoint is find_latest_checkpoint:
        return False
    source = inspect.getsource(
        hook_module.CheckpointHook._save_checkpoint_with_step)
    if "open(save_file, 'w')" in source:
        hook_module.open = _checkpoint_hook_open
    elif 'last_checkpoint' in source:  # written some other way: unknown
        from . import undecided
        undecided('resume', "CheckpointHook's last_checkpoint write")
    for module in (runner_module, checkpoint_module):
        module.find_latest_checkpoint = find_latest_checkpoint
    try:
        import mmengine.runner._flexible_runner as flexible
        flexible.find_latest_checkpoint = find_latest_checkpoint
    except ImportError:  # older mmengine
        pass
    return True
