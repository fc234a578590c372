"""MMAction2's VideoDataset with clear errors for bad samples, or skipping."""
from typing import List, Optional

from mmaction.datasets import VideoDataset
from mmaction.registry import DATASETS
from mmengine.logging import MMLogger


class BadSampleError(RuntimeError):
    """A sample's video cannot be read; names the file and annotation
    line."""


@DATASETS.register_module()
class StanVideoDataset(VideoDataset):
    """``VideoDataset`` that names the file and annotation line of a sample
    that fails to load, or skips it.

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
        data_list = super().load_data_list()
        # VideoDataset makes one sample per line of the list file, in order.
        for line_no, info in enumerate(data_list, start=1):
            info['ann_line'] = line_no
        return data_list

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
