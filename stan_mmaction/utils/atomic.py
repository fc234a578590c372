"""Writing a file so that readers see the old or the new one, never half."""
import os
import os.path as osp
import uuid
from contextlib import contextmanager


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` to write to. On a clean exit
    the file is flushed to disk and renamed over ``path`` (atomic on POSIX);
    on an error it is removed and ``path`` is left as it was.

    The temporary name is unique (process and a random part), so two
    writers of the same ``path`` do not collide; the file gets the usual
    permissions of a new file.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.'
                   f'{uuid.uuid4().hex[:8]}.tmp')
    try:
        yield tmp
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
