"""Parameters and FLOPs of a model config (ours or MMAction2's).

Counts with ``torch.utils.flop_counter.FlopCounterMode``, which sees every
aten op, plus the CPU attention kernel it misses
(``stan_mmaction.analysis.flops``). MMAction2's own get_flops, built on a
jit-trace counter, skips ``scaled_dot_product_attention`` and undercounts
attention. FLOPs count a multiply-add as 2; MACs as 1 (the unit MMAction2
and fvcore call "FLOPs").

Example:
    R=configs/recognition/stan
    python tools/analysis_tools/get_flops.py \\
        $R/stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py
    python tools/analysis_tools/get_flops.py \\
        mmaction::recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py \\
        --shape 1 3 13 182 182
    # One table, under the paper's test protocol (1 clip x 3 crops):
    python tools/analysis_tools/get_flops.py $R/*.py --cfg-options \\
        test_dataloader.dataset.pipeline.1.num_clips=1
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from stan_mmaction.analysis import count_flops  # noqa: E402
from stan_mmaction.apis import StanInferencer, video_forward  # noqa: E402


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Params and FLOPs')
    parser.add_argument('config', nargs='+',
                        help='config file(s) (mmaction:: paths work); with '
                        'several, one summary table')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=None,
        help='input of one view per video, "B 3 T H W" (NCTHW models, '
        'e.g. "1 3 8 224 224") or "B T 3 H W" (2D NCHW models); default: '
        'batch 1 of the config\'s test pipeline (clip_len, crop)')
    parser.add_argument('--depth', type=int, default=3,
                        help='module depth of the breakdown')
    parser.add_argument('--table', action='store_true',
                        help='only the summary table (the default with '
                        'several configs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides for every config, e.g. the paper\'s '
                        '1-clip test: test_dataloader.dataset.pipeline.1.'
                        'num_clips=1')
    return parser.parse_args(argv)


def count_config(config, args) -> dict:
    """Params and FLOPs of one view of ``config``'s model (random weights),
    and the views its test pipeline makes (clips x crops)."""
    inferencer = StanInferencer(config, cfg_options=args.cfg_options,
                                random_weights=True)
    model = inferencer.model
    shape = tuple(args.shape) if args.shape else \
        inferencer.shape.input_shape(1)
    inputs = torch.randn(*shape)
    # Retrieval models: the video tower (the text side runs once per
    # caption, not per clip).
    total, per_module = count_flops(video_forward(model), inputs,
                                    depth=args.depth)
    views = inferencer.shape.num_clips * inferencer.shape.num_crops
    return dict(config=config, model=model, params=count_params(model),
                flops=total, per_module=dict(per_module),
                input_shape=tuple(inputs.shape), views=views,
                clips=inferencer.shape.num_clips,
                crops=inferencer.shape.num_crops,
                flops_all_views=total * views)


def print_breakdown(res: dict) -> None:
    total, views = res['flops'], res['views']
    print(f"Config: {res['config']}")
    print(f"Input shape: {res['input_shape']}")
    print(f"Params: {res['params'] / 1e6:.2f} M")
    print(f'FLOPs: {total / 1e9:.2f} G  (MACs: {total / 2e9:.2f} G)')
    print(f"Test views: {res['clips']} clip(s) x {res['crops']} crop(s) = "
          f'{views}; all views: FLOPs {total * views / 1e9:.2f} G  (MACs: '
          f'{total * views / 2e9:.2f} G)')
    print('| module | params (M) | GFLOPs |')
    print('|---|---:|---:|')
    named = dict(res['model'].named_modules())
    for name, flops in sorted(res['per_module'].items()):
        if name == 'Global' or '.' not in name:
            continue
        key = name.split('.', 1)[1]
        params = count_params(named[key]) / 1e6 if key in named else 0.0
        print(f'| {key} | {params:.2f} | {flops / 1e9:.3f} |')


def print_table(results) -> None:
    print('| config | params (M) | input (one view) | views | GMACs per '
          'view | GMACs all views | GFLOPs all views |')
    print('|---|---:|---|---|---:|---:|---:|')
    for r in results:
        name = osp.splitext(osp.basename(r['config']))[0]
        print(f"| {name} | {r['params'] / 1e6:.2f} | "
              f"{'x'.join(map(str, r['input_shape']))} | {r['clips']} x "
              f"{r['crops']} | {r['flops'] / 2e9:.1f} | "
              f"{r['flops_all_views'] / 2e9:.1f} | "
              f"{r['flops_all_views'] / 1e9:.1f} |")


def main(argv=None):
    """Print the counts; ``argv`` as on the command line. Returns them:
    ``dict(params=..., flops=..., per_module={name: flops}, views=...,
    flops_all_views=...)`` for one config, a list of those for several."""
    args = parse_args(argv)
    results = []
    for config in args.config:
        results.append(count_config(config, args))
        if not args.table and len(args.config) == 1:
            print_breakdown(results[-1])
    if args.table or len(args.config) > 1:
        print_table(results)
    for r in results:
        r.pop('model')
    return results[0] if len(results) == 1 else results


if __name__ == '__main__':
    main()
