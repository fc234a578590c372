"""Command-line options shared by the inference tools (demo, search,
extract_features): precision, compilation, batching, decoding workers."""
import contextlib

from ..utils.checks import non_negative_int, positive_int
from ..utils.precision import DTYPE_CHOICES


def add_speed_args(parser, dtype_help: str = None, batching: bool = True,
                   compile: bool = True):
    """``--dtype``, ``--device`` (and ``--compile``, ``--batch-size``,
    ``--workers``). ``--dtype`` defaults to None: the tool decides (the
    dtype of the index or folder it adds to, else ``auto``)."""
    parser.add_argument(
        '--dtype', choices=DTYPE_CHOICES, default=None,
        help=dtype_help or 'precision the model is cast to; auto: bf16 on '
        'GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), fp32 '
        'elsewhere (default: auto)')
    if compile:
        parser.add_argument(
            '--compile', action='store_true',
            help='torch.compile the video tower (a warm-up compiles it '
            'first, reported apart from the videos\' time)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:N] (default: cuda if available)')
    if batching:
        parser.add_argument('--batch-size', type=positive_int, default=None,
                            help='clips per forward pass, across windows and '
                            'videos (default: 8 on GPUs, 1 on CPUs, where one '
                            'clip already fills the matrix products)')
        parser.add_argument('--workers', type=non_negative_int, default=1,
                            help='decoding processes, overlapped with the '
                            'model (0: decode in the main process; '
                            'default: 1)')
        parser.add_argument('--stats-json', default=None,
                            help='also write the run\'s throughput (the '
                            'last line\'s numbers) to this JSON file')
    return parser


def write_stats(args, progress, dtype: str) -> None:
    """The ``--stats-json`` file of :func:`add_speed_args`: the numbers of
    ``progress``'s summary line (:meth:`VideoProgress.stats`)."""
    if getattr(args, 'stats_json', None):
        import json

        from ..utils.atomic import atomic_write_text
        atomic_write_text(args.stats_json, json.dumps(progress.stats(
            dtype, bool(getattr(args, 'compile', False))), indent=1))


def default_device(device=None) -> str:
    import torch
    return device or ('cuda' if torch.cuda.is_available() else 'cpu')


def resolve_speed_args(args) -> None:
    """Fill the device and batch-size defaults of :func:`add_speed_args`
    in place: the device from :func:`default_device`; 8 clips per batch on
    GPUs, 1 on CPUs (one ViT clip of 8-12 frames is already 400-1600 token
    rows per matrix product; batch 8 ran 4-8% slower than 1 on a 2-core
    AVX2 CPU, ``tools/analysis_tools/benchmark_tools.py``)."""
    args.device = default_device(args.device)
    if getattr(args, 'batch_size', 1) is None:
        args.batch_size = 8 if str(args.device).startswith('cuda') else 1


def resolve_dtype_arg(dtype: str, device) -> str:
    """:func:`.precision.resolve_dtype` for a tool's ``--dtype``: a dtype
    the device cannot run is a ``SystemExit`` naming the option."""
    from ..utils.precision import resolve_dtype
    try:
        return resolve_dtype(dtype, device)
    except ValueError as err:
        raise SystemExit(f'--dtype {dtype}: {err}')


#: OSErrors of files and disks (permissions, read-only or full disk,
#: missing paths) that a tool reports in one line.
_FILE_ERRNOS = ('EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOENT',
                'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'EEXIST')


#: Set to 1 to see the traceback of an error the tools report in one line.
TRACEBACK_ENV = 'STAN_MMACTION_TRACEBACK'


def _user_errors() -> tuple:
    """The named errors of input a user gave (files, annotations,
    checkpoints, configs' weights): each message names the file."""
    from ..datasets import AnnotationError, BadSampleError
    from ..models.checkpoint_formats import HFConfigError
    from ..models.clip_weights import CheckpointMismatchError
    from ..utils.checkpoint import CheckpointError
    from .data_check import DataCheckError
    from .video_prepare import OutputCollisionError
    return (CheckpointError, CheckpointMismatchError, HFConfigError,
            AnnotationError, BadSampleError, DataCheckError,
            OutputCollisionError)


@contextlib.contextmanager
def one_line_errors():
    """Run a tool's body; an error in what the user gave (a refused or
    unusable checkpoint, a bad annotation or video, a HuggingFace
    ``config.json``, a dataset that cannot be read) and an OSError of a
    file or disk end it with one line naming the file (exit 1) instead of
    a traceback. ``STAN_MMACTION_TRACEBACK=1`` shows the traceback."""
    import errno
    import os
    codes = {getattr(errno, name) for name in _FILE_ERRNOS
             if hasattr(errno, name)}
    show = os.environ.get(TRACEBACK_ENV, '') not in ('', '0')
    try:
        yield
    except _user_errors() as err:
        if show:
            raise
        raise SystemExit(f'Error: {err}') from None
    except OSError as err:
        if err.errno not in codes or show:
            raise
        where = f'{err.filename}: ' if err.filename else ''
        raise SystemExit(f'Error: {where}{err.strerror or err}') from None
