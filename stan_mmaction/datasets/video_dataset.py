"""MMAction2's VideoDataset with checked annotations and clear errors for
bad samples, or skipping."""
import os.path as osp
from typing import List, Optional

from mmaction.datasets import VideoDataset
from mmaction.registry import DATASETS
from mmengine.fileio import exists
from mmengine.logging import MMLogger

from .annotations import (AnnotationError, check_not_other_format,
                          parse_label_list, read_text, require_samples)


class BadSampleError(RuntimeError):
    """A sample's video cannot be read; names the file and annotation
    line."""


@DATASETS.register_module()
class StanVideoDataset(VideoDataset):
    """``VideoDataset`` that checks its list file at load time and names
    the file and annotation line of a sample that fails to load, or skips
    it.

    The list is MMAction2's (``path label`` per line), read as UTF-8; the
    label is the last field, so paths may contain spaces. A line without a
    label, a label that is not an integer or lies outside ``[0,
    num_classes)`` raises :class:`~.annotations.AnnotationError`
    (``FILE:LINE: problem``) in training and test mode alike. Blank lines
    are skipped. MMAction2's multi-label lists (``path l1 l2 ...``) are
    read with ``multi_class=True`` and ``num_classes`` (one-hot labels, as
    MMAction2's ``VideoDataset``); without it, such a list, and a rawframe
    list (``frame_dir total_frames label``, read by MMAction2's
    ``RawframeDataset``), are refused at load time with the setting to use
    (:func:`~.annotations.check_not_other_format`).

    Args:
        skip_bad_samples (bool): in training, replace a sample whose pipeline
            raises (missing, empty, truncated or non-video file, ...) by
            another one, logging each bad file once with a running count.
            Test mode always raises: an evaluation must not quietly change
            its test set. Defaults to False (raise
            :class:`BadSampleError`).
        *args, **kwargs: as ``mmaction.datasets.VideoDataset``.
    """

    def __init__(self, *args, skip_bad_samples: bool = False, **kwargs):
        self.skip_bad_samples = skip_bad_samples
        self.bad_samples = set()
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        exists(self.ann_file)
        if self.multi_class and not self.num_classes:
            raise AnnotationError(
                self.ann_file, 'multi_class=True needs num_classes on the '
                'dataset (labels become one-hot vectors of that length)')
        prefix = self.data_prefix.get('video')
        data_list = []
        for path, label, line in parse_label_list(
                self.ann_file, read_text(self.ann_file), self.num_classes,
                self.multi_class):
            if not self.multi_class:
                check_not_other_format(self.ann_file, path, label, line,
                                       prefix)
            if prefix is not None:
                path = osp.join(prefix, path)
            data_list.append(dict(filename=path, label=label, ann_line=line))
        return require_samples(self.ann_file, data_list)

    def prepare_data(self, idx: int) -> Optional[dict]:
        info = self.get_data_info(idx)
        try:
            return self.pipeline(info)
        except Exception as err:  # noqa: BLE001  (any reader error)
            where = (f"{info.get('filename')} ({self.ann_file}, line "
                     f"{info.get('ann_line')})")
            reason = f'{type(err).__name__}: {err}'.strip()
            if not self.skip_bad_samples or self.test_mode:
                raise BadSampleError(
                    f'Cannot load sample {where}: {reason}. Fix or remove '
                    'it, or set skip_bad_samples=True on the training '
                    'dataset to skip bad files.') from err
            if idx not in self.bad_samples:
                self.bad_samples.add(idx)
                MMLogger.get_current_instance().warning(
                    f'Skipping bad sample {where}: {reason} '
                    f'({len(self.bad_samples)} bad sample(s) so far)')
            return None
