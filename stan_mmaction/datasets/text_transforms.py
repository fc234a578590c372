"""The caption tokenisation transform of retrieval pipelines."""
from typing import Dict, List, Sequence, Union

import torch
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..utils.tokenizer import tokenize


class EmptyCaptionError(ValueError):
    """A caption is empty or whitespace only."""


def _where(results: dict, index: int = None) -> str:
    where = results.get('ann_file', 'an annotation file')
    line = results.get('ann_lines')
    if isinstance(line, (list, tuple)) and index is not None and \
            index < len(line):
        line = line[index]
    if line is not None and not isinstance(line, (list, tuple)):
        where += f', line {line}'
    if results.get('filename'):
        where += f' (video {results["filename"]})'
    return where


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
            raise EmptyCaptionError(f'no caption in {_where(results)}')
        for i, caption in enumerate(captions):
            if not isinstance(caption, str) or not caption.strip():
                raise EmptyCaptionError(
                    f'empty caption {caption!r} in {_where(results, i)}')
        results[self.key] = self.tokenize(captions)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(context_length='
                f'{self.context_length}, key={self.key!r})')
