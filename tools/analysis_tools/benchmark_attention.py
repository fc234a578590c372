"""Time every attention path at STAN's shapes; the fastest per site, dtype
and mode is what ``AUTO_PATHS`` (stan_mmaction/models/attention.py)
should say for this device.

    python tools/analysis_tools/benchmark_attention.py [--arch ViT-B/16]
        [--batch 2] [--frames 8] [--dtypes fp32 bf16] [--repeats 7]
        [--out-dir work_dirs/benchmark_attention]
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401

from stan_mmaction.utils.checks import positive_int  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Attention paths at STAN\'s shapes')
    p.add_argument('--arch', default='ViT-B/16',
                   help='CLIP architecture (sizes: stan_mmaction.models.clip)')
    p.add_argument('--batch', type=positive_int, default=2)
    p.add_argument('--frames', type=positive_int, default=8)
    p.add_argument('--size', type=positive_int, default=224,
                   help='frame height and width')
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'],
                   choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--repeats', type=positive_int, default=7)
    p.add_argument('--device', default='cpu')
    p.add_argument('--out-dir', default='work_dirs/benchmark_attention')
    return p.parse_args(argv)


def main(argv=None):
    from stan_mmaction.analysis.attention_bench import (markdown, measure,
                                                        site_shapes)
    from stan_mmaction.analysis.report import machine_line
    from stan_mmaction.apis.cli import one_line_errors
    from stan_mmaction.models.clip import get_arch
    from stan_mmaction.utils.atomic import atomic_write_text
    from stan_mmaction.utils.system import machine
    args = parse_args(argv)
    with one_line_errors():
        vision = get_arch(args.arch)['vision']
        if args.size % vision['patch_size']:
            raise SystemExit(f"--size {args.size} is not a multiple of the "
                             f"patch size {vision['patch_size']}")
        patches = (args.size // vision['patch_size']) ** 2
        heads = vision['width'] // vision.get('head_width', 64)
        shapes = site_shapes(args.batch, args.frames, patches, heads,
                             vision['width'] // heads)
        rows = measure(shapes, args.dtypes, args.repeats,
                       device=args.device)
        info = machine()
        table = markdown(rows, machine_line(info))
        os.makedirs(args.out_dir, exist_ok=True)
        atomic_write_text(osp.join(args.out_dir, 'results.json'),
                          json.dumps(dict(machine=info, args=vars(args),
                                          rows=rows), indent=1))
        atomic_write_text(osp.join(args.out_dir, 'results.md'), table)
        sys.stdout.write(table)
        return rows


if __name__ == '__main__':
    main()
