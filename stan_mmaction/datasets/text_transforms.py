"""The caption tokenisation transform of retrieval pipelines."""
from typing import Dict, List, Sequence, Union

import torch
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..utils.tokenizer import tokenize
from .annotations import EmptyCaptionError


def _fail(results: dict, problem: str, index: int = None):
    """Raise :class:`EmptyCaptionError` naming the annotation file and line
    when the dataset put them in ``results``."""
    line = results.get('ann_lines', results.get('ann_line'))
    if isinstance(line, (list, tuple)):
        line = line[index] if index is not None and index < len(line) \
            else None
    if results.get('filename'):
        problem += f' (video {results["filename"]})'
    raise EmptyCaptionError(results.get('ann_file', '<captions>'), problem,
                            line=line)


@TRANSFORMS.register_module()
class OpenCLIPTokenize(BaseTransform):
    """Tokenise ``results['text']`` (a caption or a list of captions) into
    ``(n, context_length)`` int64 ids with
    :func:`stan_mmaction.utils.tokenizer.tokenize`.

    Truncation keeps the end-of-text token last, so pooling at the
    end-of-text position still works for captions longer than the context;
    the authors' code cut to 32 tokens without it.

    Args:
        context_length (int): tokens per caption (32 for MSR-VTT/LSMDC, 77
            for DiDeMo paragraphs). Defaults to 77.
        key (str): the results key holding the text. Defaults to 'text'.

    Raises:
        EmptyCaptionError: an empty or whitespace-only caption, naming the
            annotation file and line when the dataset provides them.
    """

    def __init__(self, context_length: int = 77, key: str = 'text'):
        tokenize('', context_length)  # validates context_length
        self.context_length = context_length
        self.key = key

    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        """``(n, context_length)`` ids of one caption or a list of them."""
        return tokenize(texts, self.context_length)

    def transform(self, results: Dict) -> Dict:
        texts = results[self.key]
        captions: List[str] = [texts] if isinstance(texts, str) else list(
            texts)
        if not captions:
            _fail(results, 'no caption')
        for i, caption in enumerate(captions):
            if not isinstance(caption, str):
                _fail(results, f'caption {caption!r} is a '
                      f'{type(caption).__name__}, not a string', i)
            if not caption.strip():
                _fail(results, f'empty caption {caption!r}', i)
        results[self.key] = self.tokenize(captions)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(context_length='
                f'{self.context_length}, key={self.key!r})')
