"""A tiny retrieval model and batch, shared by the single-process references
(tests/test_retrieval.py) and their gloo runs (this file, run with
``python -m torch.distributed.run --standalone --nproc_per_node N``).

``--cases`` (one launch computes them all; ``rank{R}.pt`` holds a dict
keyed by case):

- ``gather:3,2``: our loss and gradients on rows split between 2 ranks (3
  rows on rank 0, 2 on rank 1);
- ``grad_scale``: the gradients of our head with each ``reference_gpus``
  setting and of the authors' rule (below), on equal shares of the batch.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F

import stan_mmaction  # noqa: F401
from stan_mmaction.models import StanVideoTextRetriever

BATCH = 5


def build_case(batch=BATCH, **head):
    """(model, videos (B, 3, T, H, W), tokens (B, L)), deterministic."""
    torch.manual_seed(0)
    head = dict(dict(type='VideoTextRetrievalHead', temperature=0.05,
                     learnable_temperature=True), **head)
    model = StanVideoTextRetriever(
        backbone=dict(type='StanCLIPBackbone', arch='tiny',
                      drop_path_rate=0.0),
        text_encoder=dict(type='CLIPTextEncoder', arch='tiny'),
        head=head)
    # Make the zero-initialised temporal projections non-zero, so the
    # temporal modules get gradients too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'temporal_fc' in name:
                p.normal_(0, 0.02)
    gen = torch.Generator().manual_seed(1)
    videos = torch.randn(batch, 3, 4, 32, 32, generator=gen)
    tokens = torch.randint(1, 1000, (batch, 12), generator=gen)
    tokens[:, 0] = 49406
    tokens[:, -1] = 49407  # end of text: the largest id
    return model, videos, tokens


class _AuthorsGather(torch.autograd.Function):
    """The authors' gather, from its description: all-gather forward; the
    backward returns this rank's rows of this rank's gradient only (no sum
    over ranks)."""

    @staticmethod
    def forward(ctx, x, rank, world):
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.rows], None, None


def authors_loss(video, text, temperature, gather):
    """The authors' retrieval loss: cross entropies of cosine / tau in both
    directions over the gathered batch, summed."""
    video = gather(F.normalize(video, dim=-1))
    text = gather(F.normalize(text, dim=-1))
    logits = text @ video.t() / temperature
    target = torch.arange(logits.shape[0])
    return F.cross_entropy(logits, target) + F.cross_entropy(
        logits.t(), target)


GRAD_SCALE_RULES = ('ours_mean', 'ours_world_size', 'ours_8', 'authors')
GRAD_SCALE_BATCH = 8


def grad_scale_case(rank, world):
    """Gradients of every rule in GRAD_SCALE_RULES on this rank's share."""
    per = GRAD_SCALE_BATCH // world
    rows = slice(rank * per, (rank + 1) * per)
    out = {}
    for rule in GRAD_SCALE_RULES:
        reference = dict(ours_mean=None, ours_world_size='world_size',
                         ours_8=8).get(rule)
        model, videos, tokens = build_case(
            GRAD_SCALE_BATCH, learnable_temperature=False,
            reference_gpus=reference)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        inputs = dict(imgs=videos[rows], text=tokens[rows])
        if rule == 'authors':
            video, text = ddp(inputs, mode='tensor')
            loss = authors_loss(
                video, text, model.head.temperature,
                lambda x: _AuthorsGather.apply(x, rank, world))
        else:
            losses = ddp(inputs, mode='loss')
            loss = losses['loss_t2v'] + losses['loss_v2t']
        loss.backward()
        out[rule] = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out


def gather_case(rank, split):
    """Loss and gradients of this rank's rows, ``split`` the rows each rank
    holds (``'3,2'``)."""
    sizes = [int(s) for s in split.split(',')]
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    model, videos, tokens = build_case()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    losses = ddp(dict(imgs=videos[rows], text=tokens[rows]), mode='loss')
    loss = losses['loss_t2v'] + losses['loss_v2t']
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return dict(loss=loss.detach(), grads=grads)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', required=True)
    parser.add_argument('--cases', nargs='+', required=True,
                        help='gather:R0,R1 (rows of rank 0, rank 1) and/or '
                        'grad_scale')
    args = parser.parse_args()
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {}
    for case in args.cases:
        if case == 'grad_scale':
            result[case] = grad_scale_case(rank, world)
        elif case.startswith('gather:'):
            result[case] = gather_case(rank, case.split(':', 1)[1])
        else:
            raise SystemExit(f'unknown case {case!r}')
    torch.save(result, os.path.join(args.out, f'rank{rank}.pt'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
