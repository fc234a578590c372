"""Log lines that upstream code writes at INFO or WARNING for every run but
that say nothing to the person running it, moved to DEBUG
(``log_level='DEBUG'`` shows them again)."""
import logging
from typing import Sequence


class LinesToDebug(logging.Filter):
    """A filter for a logger: records whose message starts with one of
    ``prefixes`` become DEBUG records (a handler at the run's
    ``log_level`` then drops them, one at DEBUG keeps them)."""

    def __init__(self, prefixes: Sequence[str]):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(self.prefixes):
            record.levelno, record.levelname = logging.DEBUG, 'DEBUG'
        return True


#: MMEngine's own checkpoint code creates a ``FileClient`` for every run
#: (``CheckpointHook.before_train``, ``save_checkpoint``) even when no
#: ``file_client_args`` are given, and the deprecation of its API is
#: logged as a WARNING each time: a message to MMEngine's developers,
#: about MMEngine's calls.
FILE_CLIENT_DEPRECATION = ('"FileClient" will be deprecated in future',
                           '"HardDiskBackend" is the alias of "LocalBackend"')

#: MMEngine's table of every hook at every stage (~95 lines a run).
HOOK_TABLE = ('Hooks will be executed in the following order', )
