"""Writing a file so that readers see the old or the new one, never half."""
import os
import os.path as osp
import re
import uuid
from contextlib import contextmanager


@contextmanager
def atomic_path(path, suffix: str = '.tmp'):
    """Yield a temporary path beside ``path`` to write to. On a clean exit
    the file is flushed to disk and renamed over ``path`` (atomic on POSIX);
    on an error it is removed and ``path`` is left as it was. The folder is
    created if missing.

    The temporary name is unique (process and a random part), so two
    writers of the same ``path`` do not collide; the file gets the usual
    permissions of a new file. ``suffix`` ends the temporary name (writers
    that choose the format by extension, such as OpenCV, need the real
    one).
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.'
                   f'{uuid.uuid4().hex[:8]}{suffix}')
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        # mkstemp-style writers (safetensors) make private files: the
        # result gets what a new file gets under the umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None:  # a full disk names no file: this one
            raise OSError(err.errno, err.strerror, path) from err
        raise
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: str) -> list:
    """Remove the temporary files :func:`atomic_path` left in ``folder``
    when its writer was killed (``.NAME.PID.XXXXXXXX.tmp`` whose process
    is gone; a live writer's file is left alone). Returns the names
    removed."""
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in sorted(os.listdir(folder)):
        m = _TEMP_NAME.match(entry)
        if m and not _alive(int(m.group('pid'))):
            try:
                os.remove(osp.join(folder, entry))
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def file_lock(path):
    """Hold an exclusive lock on ``path + '.lock'`` (POSIX ``flock``; waits
    for another holder). Writers that read, merge and rewrite one file
    take it around the whole read-merge-write."""
    import fcntl
    lock = os.fspath(path) + '.lock'
    os.makedirs(osp.dirname(osp.abspath(lock)), exist_ok=True)
    with open(lock, 'a') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)


def atomic_savefig(fig, path, **kwargs) -> None:
    """``fig.savefig`` through :func:`atomic_path` (the temporary name keeps
    the extension, which picks the image format)."""
    with atomic_path(path, suffix=osp.splitext(os.fspath(path))[1]) as tmp:
        fig.savefig(tmp, **kwargs)
