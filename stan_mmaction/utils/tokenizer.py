"""Caption tokenisation with open_clip's tokenizer (no OpenAI ``clip``
package, no HuggingFace): one function for the dataset transform
(``OpenCLIPTokenize``) and the models (zero-shot prompts, search queries)."""
from typing import Sequence, Union

import torch

_TOKENIZER = None


def clip_tokenizer():
    """open_clip's ``SimpleTokenizer`` (CLIP's BPE), built once."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from open_clip.tokenizer import SimpleTokenizer
        _TOKENIZER = SimpleTokenizer()
    return _TOKENIZER


def tokenize(texts: Union[str, Sequence[str]],
             context_length: int = 77) -> torch.Tensor:
    """``(n, context_length)`` int64 token ids of one caption or a list.

    Truncation keeps the end-of-text token last (open_clip's tokenizer sets
    the last id to it), so pooling at the end-of-text position still works
    for captions longer than the context. CLIP's tokenizer lower-cases, fixes
    unicode with ``ftfy`` and maps any character through its byte-level BPE,
    so non-ASCII text tokenises without error.
    """
    if context_length < 2:
        raise ValueError('context_length must be >= 2 (start and end '
                         f'tokens), got {context_length}')
    if isinstance(texts, str):
        texts = [texts]
    return clip_tokenizer()(list(texts), context_length=context_length)
