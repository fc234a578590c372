"""Attention paths timed at STAN's shapes
(``tools/analysis_tools/benchmark_attention.py``): for each site (CLIP's
and the spatial blocks' ``1 + P`` tokens per frame; the temporal module's
``T`` tokens per location), dtype and mode (inference: forward under
``inference_mode``; training: forward and backward), every path of
``models.attention`` on q, k, v laid out as the model makes them (strided
views of one fused projection), all in one alternation. The fastest path
per row is what ``AUTO_PATHS`` should say for this device."""
from typing import Callable, Dict, List, Sequence

import torch

from ..models.attention import ATTENTION_PATHS, attend, resolve_attention
from .cases import DTYPES
from .profiling import measure_alternating
from .report import md_table


def site_shapes(batch: int, frames: int, patches: int, heads: int,
                head_dim: int) -> Dict[str, tuple]:
    """``site -> (N, L, H, d)`` of the attention calls of one forward."""
    return {'frame': (batch * frames, 1 + patches, heads, head_dim),
            'time': (batch * patches, frames, heads, head_dim)}


def _task(shape: tuple, dtype: torch.dtype, path: str, training: bool,
          device: str) -> Callable:
    n, length, heads, dim = shape
    qkv = torch.randn(n, length, 3, heads, dim, device=device, dtype=dtype)
    qkv.requires_grad_(training)

    def views():
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    if training:
        def run():
            q, k, v = views()
            attend(q, k, v, path).sum().backward()
            qkv.grad = None
    else:
        def run():
            with torch.inference_mode():
                q, k, v = views()
                return attend(q, k, v, path)
    return run


def measure(shapes: Dict[str, tuple], dtypes: Sequence[str], repeats: int,
            warmup: int = 1, device: str = 'cpu') -> List[dict]:
    """Rows ``site, shape, dtype, mode, seconds {path: s}, fastest, auto``
    (``auto``: what ``'auto'`` picks here)."""
    tasks = {}
    for site, shape in shapes.items():
        for name in dtypes:
            for training in (False, True):
                for path in ATTENTION_PATHS:
                    tasks[(site, name, training, path)] = _task(
                        shape, DTYPES[name], path, training, device)
    timing = measure_alternating(tasks, repeats, warmup, device)
    rows = []
    for site, shape in shapes.items():
        for name in dtypes:
            for training in (False, True):
                secs = {p: timing[(site, name, training, p)]['seconds']
                        for p in ATTENTION_PATHS}
                rows.append(dict(
                    site=site, shape=list(shape), dtype=name,
                    mode='training' if training else 'inference',
                    seconds=secs, fastest=min(secs, key=secs.get),
                    auto=resolve_attention('auto', torch.device(device).type,
                                           DTYPES[name], site, training)))
    return rows


def markdown(rows: List[dict], machine_line: str) -> str:
    """The table of :func:`measure`'s rows."""
    paths = list(ATTENTION_PATHS)
    lines = [machine_line] + md_table(
        'site | N, L, heads, head dim | dtype | mode | ' +
        ' | '.join(f'{p} (ms)' for p in paths) + ' | fastest | auto picks',
        '---|---|---|---|' + '---:|' * len(paths) + '---|---',
        ([r['site'], ', '.join(map(str, r['shape'])), r['dtype'], r['mode'],
          *(f"{1e3 * r['seconds'][p]:.2f}" for p in paths), r['fastest'],
          r['auto']] for r in rows))
    return '\n'.join(lines) + '\n'
