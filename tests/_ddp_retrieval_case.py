"""A tiny retrieval model and batch, shared by the single-process reference
(tests/test_retrieval.py) and its 2-process gloo run (this file, run with
``python -m torch.distributed.run --standalone --nproc_per_node 2``)."""
import argparse
import os

import torch

import stan_mmaction  # noqa: F401
from stan_mmaction.models import StanVideoTextRetriever

BATCH = 5


def build_case():
    """(model, videos (B, 3, T, H, W), tokens (B, L)), deterministic."""
    torch.manual_seed(0)
    model = StanVideoTextRetriever(
        backbone=dict(type='StanCLIPBackbone', arch='tiny',
                      drop_path_rate=0.0),
        text_encoder=dict(type='CLIPTextEncoder', arch='tiny'),
        head=dict(type='VideoTextRetrievalHead', temperature=0.05,
                  learnable_temperature=True))
    # Make the zero-initialised temporal projections non-zero, so the
    # temporal modules get gradients too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'temporal_fc' in name:
                p.normal_(0, 0.02)
    gen = torch.Generator().manual_seed(1)
    videos = torch.randn(BATCH, 3, 4, 32, 32, generator=gen)
    tokens = torch.randint(1, 1000, (BATCH, 12), generator=gen)
    tokens[:, 0] = 49406
    tokens[:, -1] = 49407  # end of text: the largest id
    return model, videos, tokens


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', required=True)
    parser.add_argument('--split', default='3,2',
                        help='rows of the batch held by rank 0, rank 1')
    args = parser.parse_args()
    torch.distributed.init_process_group('gloo')
    rank = torch.distributed.get_rank()
    sizes = [int(s) for s in args.split.split(',')]
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    model, videos, tokens = build_case()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    losses = ddp(dict(imgs=videos[rows], text=tokens[rows]), mode='loss')
    loss = losses['loss_t2v'] + losses['loss_v2t']
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    torch.save(dict(loss=loss.detach(), grads=grads),
               os.path.join(args.out, f'rank{rank}.pt'))
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
