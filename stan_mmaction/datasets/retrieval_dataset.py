"""Video-text retrieval datasets: MSR-VTT, DiDeMo, LSMDC annotation formats.

One class, :class:`VideoTextRetrievalDataset`, reads the standard files:

- ``ann_format='json'``: MMAction2's ``VideoTextDataset`` / CLIP4Clip JSON,
  ``{"video7020.mp4": ["caption", ...], ...}`` (MSR-VTT ``train_9k.json``,
  ``train_7k.json``, ``test_JSFUSION.json``);
- ``ann_format='didemo'``: LocalizingMoments' ``train_data.json`` /
  ``test_data.json`` (a list of ``{"video": ..., "description": ...}``); the
  sentences of a video are joined into one paragraph;
- ``ann_format='lsmdc'``: LSMDC's tab-separated ``LSMDC16_annos_*.csv``
  (clip id first, sentence last); clip ``1001_Flight_00.00.53.430-...`` is
  read from ``1001_Flight/1001_Flight_00.00.53.430-....avi``.

Training yields one sample per (video, caption) pair; testing one sample per
video with all its captions, each a text query of the metric.
"""
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional

from mmaction.registry import DATASETS
from mmengine.fileio import exists

from .annotations import (AnnotationError, check_captions, read_json,
                          read_text, require_samples)
from .video_dataset import StanVideoDataset

ANN_FORMATS = ('json', 'didemo', 'lsmdc')


def _json_line(text: str, name: str, start: int = 0) -> (int, int):
    """(1-based line of the JSON string ``name`` in ``text`` at or after
    ``start``, its offset), written as is or with ASCII escapes; (None,
    start) when absent."""
    for needle in (json.dumps(name, ensure_ascii=False), json.dumps(name)):
        pos = text.find(needle, start)
        if pos >= 0:
            return text.count('\n', 0, pos) + 1, pos
    return None, start


@DATASETS.register_module()
class VideoTextRetrievalDataset(StanVideoDataset):
    """Videos with captions, for video-text retrieval.

    Args:
        ann_file (str): the annotation file (see the module docs).
        pipeline (list): the data pipeline (decode, ..., ``OpenCLIPTokenize``,
            ``PackActionInputs(collect_keys=('imgs', 'text'))``).
        ann_format (str): ``'json'``, ``'didemo'`` or ``'lsmdc'``.
            Defaults to ``'json'``.
        paragraph (bool): join all captions of a video into one (DiDeMo's
            protocol; implied by ``ann_format='didemo'``). Defaults to False.
        video_ext (str, optional): replace the extension of the file names
            in the annotation (``'.mp4'`` for DiDeMo videos converted as
            CLIP4Clip does); LSMDC clips get ``'.avi'`` unless given.
        **kwargs: as :class:`StanVideoDataset` (``data_prefix``,
            ``test_mode``, ``skip_bad_samples``, ...).
    """

    def __init__(self,
                 ann_file: str,
                 pipeline: List,
                 ann_format: str = 'json',
                 paragraph: bool = False,
                 video_ext: Optional[str] = None,
                 **kwargs):
        if ann_format not in ANN_FORMATS:
            raise ValueError(f'ann_format={ann_format!r}; choose one of '
                             f'{ANN_FORMATS}')
        self.ann_format = ann_format
        self.paragraph = paragraph or ann_format == 'didemo'
        self.video_ext = video_ext
        super().__init__(ann_file, pipeline, **kwargs)

    # -- readers: each returns OrderedDict video -> [(caption, line), ...]
    def _read_json(self, text: str) -> Dict[str, list]:
        videos = read_json(self.ann_file, text)
        if not isinstance(videos, dict):
            raise AnnotationError(
                self.ann_file, 'expected a JSON object {video: [captions]} '
                '(ann_format="json")')
        out, pos = OrderedDict(), 0
        for video, captions in videos.items():
            line, pos = _json_line(text, video, pos)
            captions = check_captions(self.ann_file, video, captions, line)
            out[video] = [(c, line) for c in captions]
        return out

    def _read_didemo(self, text: str) -> Dict[str, list]:
        entries = read_json(self.ann_file, text)
        if not isinstance(entries, list):
            raise AnnotationError(
                self.ann_file, 'expected a JSON list of {"video", '
                '"description"} (ann_format="didemo")')
        out, pos = OrderedDict(), 0
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {'video', 'description'
                                                   } <= set(entry):
                raise AnnotationError(
                    self.ann_file, f'entry {i} lacks "video" or '
                    '"description"')
            video = entry['video']
            if not isinstance(video, str) or not video.strip():
                raise AnnotationError(
                    self.ann_file, f'entry {i}: video {video!r} is not a '
                    'file name')
            line, pos = _json_line(text, video, pos)
            for caption in check_captions(self.ann_file, video,
                                          entry['description'], line):
                out.setdefault(video, []).append((caption, line))
        return out

    def _read_lsmdc(self, text: str) -> Dict[str, list]:
        out = OrderedDict()
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.rstrip('\n').split('\t')
            if len(fields) < 2 or not fields[0].strip():
                raise AnnotationError(
                    self.ann_file, 'expected tab-separated "clip_id ... '
                    'sentence"', line=line_no)
            clip = fields[0].strip()
            movie = clip.rsplit('_', 1)[0]
            ext = self.video_ext or '.avi'
            video = f'{movie}/{clip}{ext}'
            (caption, ) = check_captions(self.ann_file, video, fields[-1],
                                         line_no)
            out.setdefault(video, []).append((caption, line_no))
        return out

    def load_data_list(self) -> List[dict]:
        exists(self.ann_file)
        text = read_text(self.ann_file)
        videos = getattr(self, f'_read_{self.ann_format}')(text)
        data_list = []
        for index, (video, captions) in enumerate(videos.items()):
            if self.video_ext and self.ann_format != 'lsmdc':
                video = osp.splitext(video)[0] + self.video_ext
            filename = osp.join(self.data_prefix['video'], video)
            groups = [captions]
            if self.paragraph:
                groups = [[(' '.join(c.strip() for c, _ in captions),
                            captions[0][1])]]
            elif not self.test_mode:
                groups = [[c] for c in captions]
            for group in groups:
                data_list.append(dict(
                    filename=filename,
                    text=[c for c, _ in group],
                    ann_file=self.ann_file,
                    ann_line=group[0][1],
                    ann_lines=[line for _, line in group],
                    video_index=index))
        return require_samples(self.ann_file, data_list)
