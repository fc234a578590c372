"""The benchmark's model cases: a config's model with random weights, its
input shape from the config's test pipeline, the callables to time (an
inference, a training step), and peak-memory probes measured in a process
that starts clean. Used by ``tools/analysis_tools/benchmark.py`` and
``compare.py``."""
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from ..apis import StanInferencer, video_forward
from ..utils.system import keep_freed_memory
from .flops import count_flops
from .profiling import PeakMemory, in_forked_child

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}


def _output_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


class ModelCase:
    """One config: the model (random weights), its input shape (from the
    config's test pipeline) and the callables to time."""

    def __init__(self, config: str, device: str = 'cpu',
                 dtypes=('fp32', ), compile: bool = False):
        self.name = osp.splitext(osp.basename(config))[0]
        self.config = config
        torch.manual_seed(0)
        inferencer = StanInferencer(config, device=device,
                                    random_weights=True)
        self.model, self.shape = inferencer.model, inferencer.shape
        # the optimizer the config trains with (its parameter groups left
        # out: they change the arithmetic of a step by nothing)
        wrapper = inferencer.cfg.get('optim_wrapper') or {}
        self.optimizer_cfg = copy.deepcopy(wrapper.get('optimizer')) or \
            dict(type='AdamW', lr=1e-6)
        self.frames = self.shape.frames
        self.device = device
        self.params = sum(p.numel() for p in self.model.parameters())
        with torch.no_grad():
            self.flops = count_flops(video_forward(self.model),
                                     self.input(1, self.frames))[0]
        self.variants = {'fp32': self.model}
        for name in dtypes:
            if name != 'fp32':
                # The whole model in the low precision (not autocast: on CPU
                # autocast re-casts weights at every op and ran 3.5x slower
                # than fp32 for open_clip ViT-B/16 here).
                self.variants[name] = copy.deepcopy(self.model).to(
                    DTYPES[name])
        if compile:
            self.compiled = {k: torch.compile(video_forward(m))
                             for k, m in self.variants.items()}

    def input(self, batch: int, frames: int, dtype: str = 'fp32'):
        shape = list(self.shape.input_shape(batch))
        shape[1 if self.shape.format_shape == 'NCHW' else 2] = frames
        return torch.randn(*shape, device=self.device, dtype=DTYPES[dtype])

    def forward_fn(self, dtype: str, compiled: bool = False) -> Callable:
        if compiled:
            return self.compiled[dtype]
        return video_forward(self.variants[dtype])

    def infer(self, batch: int, frames: int, dtype: str,
              compiled: bool = False):
        x = self.input(batch, frames, dtype)
        fn = self.forward_fn(dtype, compiled)

        def run():
            with torch.inference_mode():
                return fn(x)
        return run

    @property
    def has_grad_checkpointing(self) -> bool:
        return callable(getattr(self.model, 'set_grad_checkpointing', None)) \
            or callable(getattr(getattr(self.model, 'backbone', None),
                                'set_grad_checkpointing', None))

    def _set_grad_checkpointing(self, enable: bool) -> None:
        target = self.model if callable(getattr(
            self.model, 'set_grad_checkpointing', None)) else \
            self.model.backbone
        target.set_grad_checkpointing(enable)

    def train_step(self, batch: int, checkpointing: bool,
                   amp: Optional[str] = None):
        """One training step (forward, backward, the config's optimizer:
        ``optim_wrapper.optimizer``, AdamW if it has none) on ``batch``
        clips, on a CPU with freed memory kept for reuse as ``StanRunner``
        sets it (``utils.system.keep_freed_memory``);
        ``amp`` (``'bf16'``/``'fp16'``): the forward and loss under
        ``torch.autocast`` in that dtype, as ``AmpOptimWrapper`` trains
        (timing only: no loss scaling)."""
        import contextlib
        model = self.model
        if torch.device(self.device).type == 'cpu':
            keep_freed_memory()  # as StanRunner trains on a CPU
        if checkpointing and not self.has_grad_checkpointing:
            raise RuntimeError(f'{self.name}: no set_grad_checkpointing')
        x = self.input(batch, self.frames)
        optim = build_optimizer(
            self.optimizer_cfg,
            [p for p in model.parameters() if p.requires_grad])
        fwd = video_forward(model)
        device_type = torch.device(self.device).type

        def autocast():
            if amp is None:
                return contextlib.nullcontext()
            return torch.autocast(device_type, dtype=DTYPES[amp])

        def run():
            if self.has_grad_checkpointing:
                self._set_grad_checkpointing(checkpointing)
            model.train()
            with autocast():
                out = _output_tensor(fwd(x))
                loss = out.float().square().mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            model.eval()
            if self.has_grad_checkpointing:
                self._set_grad_checkpointing(False)
        return run


def build_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    """``cfg`` (an MMEngine optimizer config: ``type`` and its arguments)
    over ``params``, from MMEngine's ``OPTIMIZERS`` registry."""
    from mmengine.registry import OPTIMIZERS
    return OPTIMIZERS.build(dict(cfg, params=params))


def embedding_cosine(case: ModelCase, dtype: str, batch: int = 1) -> float:
    """Mean cosine similarity of the ``dtype`` model's outputs to fp32."""
    torch.manual_seed(1)
    x = case.input(batch, case.frames)
    with torch.inference_mode():
        ref = _output_tensor(case.forward_fn('fp32')(x)).float()
        low = _output_tensor(case.forward_fn(dtype)(x.to(
            DTYPES[dtype]))).float()
    return F.cosine_similarity(ref.flatten(1), low.flatten(1)).mean().item()


def retrieval_eval(sizes: List[int], dim: int = 512,
                   repeats: int = 1) -> List[dict]:
    from ..evaluation import retrieval_metrics
    out = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        video = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
        text = F.normalize(video + torch.randn(n, dim, generator=gen),
                           dim=-1)
        owner = torch.arange(n)
        runs, peak = [], 0
        for _ in range(repeats):
            with PeakMemory('cpu') as mem:
                start = time.perf_counter()
                metrics = retrieval_metrics(video, text, owner, dsl=True)
                runs.append(time.perf_counter() - start)
            peak = max(peak, mem.peak)
        out.append(dict(n=n, seconds=statistics.median(runs),
                        peak_extra_bytes=peak,
                        t2v_R1=metrics['t2v_R1']))
    return out


def _probe_once(config: str, mode: str, batch: int) -> dict:
    """Build the model, then measure the peak RSS of one run above the RSS
    before it."""
    if mode == 'retrieval':  # batch = N videos = N captions
        row = retrieval_eval([int(batch)], repeats=1)[0]
        return dict(peak_bytes=row['peak_extra_bytes'],
                    seconds=row['seconds'], t2v_R1=row['t2v_R1'])
    case = ModelCase(config, 'cpu')
    batch = int(batch)
    fn = case.infer(batch, case.frames, 'fp32') if mode == 'infer' else \
        case.train_step(batch, mode == 'ckpt')
    with PeakMemory('cpu') as mem:
        fn()
    return dict(peak_bytes=mem.peak)


def _probe_in_child(config, mode, batch, threads) -> dict:
    if threads:
        torch.set_num_threads(threads)
    return _probe_once(config, mode, batch)


def main(argv=None) -> None:
    """The probe process (``python -m stan_mmaction.analysis.cases PROBES
    [THREADS]``, PROBES as JSON ``[[config, mode, batch], ...]``): it has
    only imported (its allocator holds no freed memory of earlier runs);
    each probe runs in a child forked from it, so each starts from that
    clean state. Writes the results as one JSON line."""
    argv = sys.argv[1:] if argv is None else argv
    threads = int(argv[1]) if len(argv) > 1 else None
    results = []
    for config, mode, batch in json.loads(argv[0]):
        try:
            results.append(in_forked_child(_probe_in_child, config, mode,
                                           batch, threads))
        except RuntimeError:
            raise SystemExit(f'memory probe {config} {mode} {batch} failed')
    sys.stdout.write(json.dumps(results) + '\n')


def probe_memories(probes: list, threads) -> List[dict]:
    """Peak extra CPU memory of each run of ``probes`` (``[config, mode,
    batch]`` each), each measured in a process that starts clean: in a
    long-lived one the allocator keeps freed memory and later peaks look
    smaller than they are. One fresh interpreter imports once and forks a
    child per probe (:func:`main`)."""
    import subprocess
    if not probes:
        return []
    cmd = [sys.executable, '-m', __name__,
           json.dumps([[c, m, int(b)] for c, m, b in probes])]
    if threads:
        cmd.append(str(threads))
    # The package importable as here (a clone run without installing).
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root, os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f'memory probes failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe_memory(config: str, mode: str, batch: int, threads):
    """:func:`probe_memories` of one run: its peak extra bytes (a dict
    with the time and R@1 as well for ``mode='retrieval'``)."""
    result = probe_memories([[config, mode, batch]], threads)[0]
    return result if mode == 'retrieval' else result['peak_bytes']


if __name__ == '__main__':
    main()
