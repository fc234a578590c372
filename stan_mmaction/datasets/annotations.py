"""Reading and checking annotation files: one error type that names the
file, the line (or JSON key) and the problem.

Bad annotations stop loading in training and test mode alike;
``skip_bad_samples`` is for unreadable videos only (a wrong label or a
missing caption is not a video a run can do without).
"""
import json
import os.path as osp
from typing import Iterator, List, Optional, Tuple, Union


class AnnotationError(ValueError):
    """A malformed annotation; the message reads ``FILE:LINE: problem`` (or
    ``FILE, key K: problem`` where no line is known)."""

    def __init__(self, ann_file: str, problem: str,
                 line: Optional[int] = None, key: Optional[str] = None):
        self.ann_file, self.line, self.key = ann_file, line, key
        if line is not None:
            where = f'{ann_file}:{line}'
        elif key is not None:
            where = f'{ann_file}, key {key!r}'
        else:
            where = ann_file
        super().__init__(f'{where}: {problem}')


class EmptyCaptionError(AnnotationError):
    """A caption is empty or whitespace only."""


def read_text(ann_file: str) -> str:
    """The file's text as UTF-8 (a byte-order mark, as some editors write,
    dropped), or an :class:`AnnotationError` naming the file and the first
    undecodable byte."""
    with open(ann_file, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        raise AnnotationError(
            ann_file, f'not UTF-8 text (byte 0x{data[err.start]:02x} at '
            f'offset {err.start}); save the file as UTF-8', line=line
        ) from None


def require_samples(ann_file: str, data_list: list) -> list:
    """``data_list``, or an :class:`AnnotationError` when the file gave no
    sample (MMEngine fails later with "need at least one array to
    concatenate", naming nothing)."""
    if not data_list:
        raise AnnotationError(ann_file, 'no samples (the file is empty or '
                              'holds only blank lines)')
    return data_list


def read_json(ann_file: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationError(ann_file, f'invalid JSON: {err.msg}',
                              line=err.lineno) from None


def parse_label_list(ann_file: str, text: str,
                     num_classes: Optional[int] = None,
                     multi_class: bool = False
                     ) -> Iterator[Tuple[str, Union[int, List[int]], int]]:
    """``(path, label, line)`` of an MMAction2 video list (``path label``
    per line; ``path l1 l2 ...`` with ``multi_class``).

    The label is the last field (the last ones with ``multi_class``), so
    paths may contain spaces. Blank lines are skipped. Every label must be
    an integer in ``[0, num_classes)`` (``num_classes`` unknown: ``>= 0``).
    """
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if multi_class:
            fields = line.split()
            path, labels = fields[0], fields[1:]
        else:
            fields = line.rsplit(None, 1)
            path, labels = fields[0], fields[1:]
        if not labels:
            raise AnnotationError(
                ann_file, f'{line!r} has no label; expected "path label"',
                line=line_no)
        values = []
        for field in labels:
            try:
                values.append(int(field))
            except ValueError:
                raise AnnotationError(
                    ann_file, f'label {field!r} of {path} is not an '
                    'integer; expected "path label"', line=line_no) from None
        for value in values:
            if value < 0 or (num_classes is not None
                             and value >= num_classes):
                bound = (f'[0, {num_classes})' if num_classes is not None
                         else '>= 0')
                raise AnnotationError(
                    ann_file, f'label {value} of {path} is outside {bound}',
                    line=line_no)
        yield path, values if multi_class else values[0], line_no


#: File name endings of videos (MMAction2's ``VideoDataset`` reads any
#: file decord or PyAV opens; these tell a video from a frame folder).
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.flv',
                    '.mpg', '.mpeg', '.wmv', '.3gp', '.ogv', '.ts')


def check_not_other_format(ann_file: str, path: str, label: int,
                           line: int, prefix: Optional[str] = None) -> None:
    """Refuse a line of another MMAction2 list format read as a video list
    (``path label``): a multi-label line (``video.mp4 0 3``) or a rawframe
    line (``frame_dir 5 127``, ``frame_dir offset total label``) would
    otherwise become a video named ``'video.mp4 0'`` or ``'frame_dir 5'``
    that fails much later as "file not found". A path with spaces whose
    last word is a number and that does not exist as a file is taken for
    such a line; the message names the format and the setting to use.
    ``path`` is as written in the list, ``prefix`` the dataset's
    ``data_prefix``."""
    def full(name):
        return osp.join(prefix, name) if prefix else name

    fields = path.split()
    if len(fields) < 2 or not fields[-1].lstrip('-').isdigit() or \
            osp.isfile(full(path)):
        return
    shown = ' '.join([*fields, str(label)])
    if fields[0].lower().endswith(VIDEO_EXTENSIONS) or \
            osp.isfile(full(fields[0])):
        raise AnnotationError(
            ann_file, f'{shown!r} looks like a multi-label list ("path label '
            'label ..."); set multi_class=True and num_classes on the '
            'dataset to read it', line=line)
    raise AnnotationError(
        ann_file, f'{shown!r} looks like a rawframe list ("frame_dir '
        'total_frames label"); frame folders are read by MMAction2\'s '
        'RawframeDataset (dataset type=\'RawframeDataset\', '
        'data_prefix=dict(img=...), with_offset=True for "frame_dir offset '
        'total_frames label", and RawFrameDecode in the pipeline), not by '
        'a video dataset', line=line)


def check_captions(ann_file: str, video: str, captions,
                   line: Optional[int]) -> List[str]:
    """A video's captions as a list of non-empty strings: a string is one
    caption, a list must hold strings only; anything else (a number, a
    dict, an empty list, an empty string) is an :class:`AnnotationError`."""
    where = dict(line=line) if line is not None else dict(key=video)
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, list):
        raise AnnotationError(
            ann_file, f'captions of {video} must be a string or a list of '
            f'strings, got {type(captions).__name__} {captions!r}', **where)
    if not captions:
        raise AnnotationError(ann_file, f'{video} has no captions', **where)
    for caption in captions:
        if not isinstance(caption, str):
            raise AnnotationError(
                ann_file, f'caption {caption!r} of {video} is a '
                f'{type(caption).__name__}, not a string', **where)
        if not caption.strip():
            raise EmptyCaptionError(
                ann_file, f'empty caption {caption!r} for video {video}',
                **where)
    return captions
