"""Repair 6: atomic_local_writes.

Breakage: mmengine writes checkpoints and ``last_checkpoint`` in place: a crash
while saving leaves a truncated file that ``--resume auto`` then picks.
-> :func:`patch_atomic_local_writes`

Detected by: mmengine's ``LocalBackend.put``/``put_text`` are not already ours.

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_crash_while_saving_keeps_the_old_file,
test_plain_mmengine_writes_in_place.
"""


def _atomic_write(filepath, data, mode: str, encoding=None) -> None:
    """Write to a temporary file beside ``filepath``, then rename it over
    ``filepath`` (atomic on POSIX): readers see the old or the new file,
    never half of one."""
    from ..utils.atomic import atomic_path
    with atomic_path(filepath) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            f.write(data)


def _atomic_put(self, obj: bytes, filepath) -> None:
    _atomic_write(filepath, obj, 'wb')


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8'):
    _atomic_write(filepath, obj, 'w', encoding=encoding)


def patch_atomic_local_writes() -> bool:
    from mmengine.fileio.backends import LocalBackend
    if LocalBackend.put is _atomic_put:
        return False
    LocalBackend.put = _atomic_put
    LocalBackend.put_text = _atomic_put_text
    return True
