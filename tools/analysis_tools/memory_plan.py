"""Training memory per GPU for DDP, FSDP and ZeRO-2, with and without
activation checkpointing, for a STAN config (docs/scaling.md).

Parameters, gradients and AdamW states from the model; activations counted
in a forward pass on the ``meta`` device (no compute, no memory), bf16 as
the GPU configs train. The model of each strategy:
``stan_mmaction/analysis/memory_plan.py``.

``--measure`` checks the counting against this machine: one fp32 training
process (forward, backward, AdamW, twice) per checkpointing setting, each
in a fresh process, peak memory above the built model (RSS high-water mark
on CPU with glibc's mmap threshold fixed so freed tensors leave RSS, the
allocator's peak on CUDA) against the plan's single-process fp32 figures:
activations, and the total (weights + gradients + AdamW states +
activations; the measured total also holds torch's own runtime, tens of
MiB).

Example:
    python tools/analysis_tools/memory_plan.py \\
        configs/retrieval/stan/\
stan-attn_vit-large-p14-res224-clip-pre_fsdp_1x1x64_didemo-rgb.py \\
        --gpus 8 --gpu-mem 80
    python tools/analysis_tools/memory_plan.py \\
        configs/recognition/stan/\
stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py \\
        --gpus 1 --gpu-mem 80 --measure --measure-batch 1
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from stan_mmaction.analysis.memory_plan import (USABLE, GiB,  # noqa: E402
                                                count_activations, count_model,
                                                plan, single_process_fp32)
from stan_mmaction.analysis.profiling import PeakMemory  # noqa: E402
from stan_mmaction.analysis.profiling import in_forked_child  # noqa: E402
from stan_mmaction.analysis.profiling import rss_bytes  # noqa: E402
from stan_mmaction.apis import StanInferencer  # noqa: E402
from stan_mmaction.apis.inference import is_retrieval_model  # noqa: E402
from stan_mmaction.utils.checks import positive_int  # noqa: E402
from stan_mmaction.utils.system import machine  # noqa: E402

MiB = 1024**2


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not value > 0:
        raise argparse.ArgumentTypeError(f'expected a number > 0, got '
                                         f'{text!r}')
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='config file (mmaction:: paths work)')
    p.add_argument('--gpus', type=positive_int, required=True,
                   help='GPUs the batch is spread over (data parallel)')
    p.add_argument('--gpu-mem', type=positive_float, required=True,
                   help='memory of one GPU, GiB')
    p.add_argument('--batch-size', type=positive_int, default=None,
                   help="videos per GPU (default: the config's "
                   'train_dataloader.batch_size)')
    p.add_argument('--frames', type=positive_int, default=None,
                   help="frames per clip (default: the config's clip_len)")
    p.add_argument('--measure', action='store_true',
                   help='measure one fp32 training process here per '
                   'checkpointing setting and compare with the plan')
    p.add_argument('--measure-batch', type=positive_int, default=None,
                   help='batch of the measurement (default: --batch-size)')
    p.add_argument('--measure-frames', type=positive_int, default=None,
                   help='frames of the measurement (default: --frames)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'],
                   help='device of the measurement')
    p.add_argument('--json', default=None, help='write the results here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--measure-both', action='store_true',
                   help=argparse.SUPPRESS)  # the child process of --measure
    return p.parse_args(argv)


def make_forward(model, batch, frames, crop, context_length, device='meta',
                 dtype=torch.float32):
    """One training forward of ``model`` on a random batch in ``dtype``
    (loss-free: what the loss adds is negligible)."""
    video = torch.randn(batch, 3, frames, crop, crop, device=device,
                        dtype=dtype)
    if is_retrieval_model(model):
        tokens = torch.randint(0, 100, (batch, context_length or 77),
                               device=device)

        def forward(m):
            return m.encode_video(video).sum() + m.encode_text(tokens).sum()
    else:
        def forward(m):
            feats = m.extract_feat(video[:, None])[0]
            return m.cls_head(feats).sum()
    return forward


def build(args):
    inferencer = StanInferencer(args.config, cfg_options=args.cfg_options,
                                random_weights=True)
    model, shape = inferencer.model, inferencer.shape
    batch = args.batch_size or inferencer.cfg.train_dataloader.batch_size
    frames = args.frames or shape.frames
    return model, batch, frames, shape


def measure_one(args, setting: str) -> dict:
    """In this (fresh) process: memory of fp32 training, in two parts.
    ``static``: what building the model and one warm-up step on a minimal
    clip (1 video, 2 frames) add to the process (weights, gradients, AdamW
    states, torch's runtime); ``activations``: the peak of two steps on the
    real batch above that (gradients kept allocated between steps, as the
    warm-up left them). ``setting``: ``'plain'`` or ``'checkpointed'``."""
    cuda = args.device == 'cuda'
    start = torch.cuda.memory_allocated() if cuda else rss_bytes()
    model, batch, frames, shape = build(args)
    batch = args.measure_batch or batch
    frames = args.measure_frames or frames
    ckpt = setting == 'checkpointed'
    model = model.to(args.device).train()
    # retrievers switch both towers; recognizers have only the backbone's
    switch = getattr(model, 'set_grad_checkpointing', None) or \
        model.backbone.set_grad_checkpointing
    switch(ckpt)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6)

    def steps(forward, n):
        for _ in range(n):
            forward(model).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)

    steps(make_forward(model, 1, 2, shape.crop, shape.context_length,
                       device=args.device), 1)
    static = (torch.cuda.memory_allocated() if cuda else rss_bytes()) - start
    forward = make_forward(model, batch, frames, shape.crop,
                           shape.context_length, device=args.device)
    with PeakMemory(args.device) as peak:
        steps(forward, 2)
    return dict(static=static, activations=peak.peak, batch=batch,
                frames=frames, checkpointing=ckpt)


def measure(args) -> list:
    results = []
    argv = [sys.executable, osp.abspath(__file__), args.config,
            '--gpus', str(args.gpus), '--gpu-mem', str(args.gpu_mem),
            '--device', args.device]
    for flag, value in (('--batch-size', args.batch_size),
                        ('--frames', args.frames),
                        ('--measure-batch', args.measure_batch),
                        ('--measure-frames', args.measure_frames)):
        if value is not None:
            argv += [flag, str(value)]
    if args.cfg_options:
        argv += ['--cfg-options'] + [f'{k}={v}' for k, v in
                                     args.cfg_options.items()]
    # glibc's malloc keeps freed blocks in its heap once a large block was
    # freed (its mmap threshold grows), so the RSS high-water mark would
    # count memory no tensor holds any more; a fixed threshold maps every
    # block >= 64 KiB on its own and returns it on free: RSS then follows
    # the live tensors, as CUDA's allocator statistics do.
    # One fresh process (the threshold is read when it starts) measures
    # both settings, each in a child forked from it (measure_both).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    res = subprocess.run(argv + ['--measure-both'], capture_output=True,
                         text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f'measurement failed:\n{res.stderr[-3000:]}')
    results.extend(json.loads(res.stdout.strip().splitlines()[-1]))
    return results


def measure_both(args) -> list:
    """Both settings, each measured in a child forked from this process
    (which has only imported: each starts from the same clean state)."""
    return [in_forked_child(measure_one, args, setting)
            for setting in ('plain', 'checkpointed')]


def gib(nbytes: float) -> str:
    return f'{nbytes / GiB:.2f}'


def main(argv=None):
    args = parse_args(argv)
    if args.measure_both:
        print(json.dumps(measure_both(args)))
        return 0
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device here')
    model, batch, frames, shape = build(args)
    counts = count_model(model)
    acts = count_activations(model, make_forward(
        model, batch, frames, shape.crop, shape.context_length,
        dtype=torch.bfloat16), torch.bfloat16)
    rows = plan(counts, acts, args.gpus)
    out = dict(config=args.config, gpus=args.gpus, gpu_mem_gib=args.gpu_mem,
               batch_per_gpu=batch, frames=frames, crop=shape.crop,
               params=counts.params, trainable=counts.trainable,
               largest_unit=counts.largest_unit,
               activations_bf16=dict(plain=acts.peak,
                                     checkpointed=acts.checkpointed),
               rows=[r.as_dict() for r in rows])
    print(f'Config: {args.config}')
    print(f'Model: {counts.params / 1e6:.1f} M parameters '
          f'({counts.trainable / 1e6:.1f} M trainable), largest FSDP unit '
          f'{counts.largest_unit / 1e6:.1f} M')
    print(f'Per GPU: {batch} videos x {frames} frames x {shape.crop}^2, '
          f'{args.gpus} GPUs x {args.gpu_mem:g} GiB (a plan fits within '
          f'{USABLE:.0%}: {args.gpu_mem * USABLE:.1f} GiB); bf16 compute')
    print()
    print('| strategy | checkpointing | weights | gradients | optimizer | '
          'working | activations | total (GiB) | fits |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        fits = 'yes' if r.total <= args.gpu_mem * GiB * USABLE else 'no'
        print(f'| {r.strategy} | {"yes" if r.checkpointing else "no"} | '
              f'{gib(r.weights)} | {gib(r.gradients)} | {gib(r.optimizer)} | '
              f'{gib(r.working)} | {gib(r.activations)} | **{gib(r.total)}**'
              f' | {fits} |')
    if args.measure:
        mb = args.measure_batch or batch
        mf = args.measure_frames or frames
        # a fresh build (the first is on the meta device in bf16 now);
        # its random weights do not matter, only shapes are counted
        fresh = build(args)[0]
        acts32 = count_activations(fresh, make_forward(
            fresh, mb, mf, shape.crop, shape.context_length), torch.float32)
        info = machine()
        print()
        print(f'Measured on {args.device} ({info["cpu"]}, '
              f'{info["threads"]} threads), fp32, 1 process, {mb} videos x '
              f'{mf} frames: activations = peak of 2 training steps above '
              'the process after a minimal warm-up step; total = that + '
              'what the model and the warm-up added (plan: weights + '
              'gradients + AdamW states + activations):')
        print()
        print('| checkpointing | part | plan (MiB) | measured (MiB) | '
              'measured / plan |')
        print('|---|---|---|---|---|')
        out['measured'] = []
        for res in measure(args):
            ckpt = res['checkpointing']
            parts = dict(
                activations=(acts32.checkpointed if ckpt else acts32.peak,
                             res['activations']),
                total=(single_process_fp32(counts, acts32, ckpt) +
                       4 * counts.params,
                       res['static'] + res['activations']))
            for part, (expected, measured) in parts.items():
                print(f'| {"yes" if ckpt else "no"} | {part} | '
                      f'{expected / MiB:.0f} | {measured / MiB:.0f} | '
                      f'{measured / expected:.2f} |')
                res[part + '_plan'] = expected
            out['measured'].append(res)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
