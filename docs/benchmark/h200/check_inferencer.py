"""GPU check of the inferencer (run on the lent machine): the tiny models on
CUDA equal CPU within the dtype's tolerance; demo/search/extract paths on
CUDA; StanInferencer throughput for B/16 and B/32 on 224-px MP4s."""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, 'tests')
from conftest import write_videos  # noqa

import stan_mmaction  # noqa
from stan_mmaction.apis import StanInferencer, embed_video  # noqa

DEV = os.environ.get('DEV', 'cuda')
out = {'gpu': torch.cuda.get_device_name(0) if DEV == 'cuda' else 'cpu',
       'torch': torch.__version__}
tmp = Path(tempfile.mkdtemp())
vids = write_videos(tmp / 'v', [0, 3, 5, 6], frames=24)
R = 'configs/demo/stan_tiny_synthetic_retrieval.py'
C = 'configs/demo/stan_tiny_synthetic.py'
torch.manual_seed(0)
ckpt = str(tmp / 'r.pth')
torch.save({'state_dict': StanInferencer(R).model.state_dict()}, ckpt)
cpu = StanInferencer(R, ckpt)
ref = torch.stack([embed_video(cpu, v, window=8) for v in vids])
res = {}
for dtype in (('fp32', 'bf16', 'fp16') if DEV == 'cuda' else ('fp32', 'bf16')):
    for comp in (False, True):
        inf = StanInferencer(R, ckpt, device=DEV, dtype=dtype,
                             compile=comp)
        warm = inf.warm_up('embed', 4)
        outs = {o.path: o.embedding for o in inf.iter_videos(
            vids, 'embed', 8, 4, workers=2)}
        emb = torch.stack([outs[v] for v in vids])
        cos = torch.nn.functional.cosine_similarity(emb, ref).min().item()
        res[f'{dtype}{"_compiled" if comp else ""}'] = dict(
            min_cosine_to_cpu_fp32=round(cos, 6), warm_s=round(warm, 2))
out['tiny_retrieval_cuda_vs_cpu'] = res
rec_cpu = StanInferencer(C)
state = rec_cpu.model.state_dict()
rec = StanInferencer(C, device=DEV, dtype='bf16')
rec.model.load_state_dict(state)
a = rec_cpu(vids, window=8)['predictions']
b = rec(vids, window=8)['predictions']
out['tiny_recognizer_bf16_max_abs_score_diff'] = float(max(
    np.abs(np.array(x['pred_scores']) - np.array(y['pred_scores'])).max()
    for x, y in zip(a, b)))

# Throughput: random-weight B/16 and B/32 (8 / 12 frames) on 224-px videos.
import cv2  # noqa

big = tmp / 'big'
big.mkdir()
rng = np.random.default_rng(0)
paths = []
for i in range(int(os.environ.get('NVID', 32))):
    p = str(big / f'{i}.mp4')
    w = cv2.VideoWriter(p, cv2.VideoWriter_fourcc(*'mp4v'), 25, (398, 224))
    base = rng.integers(0, 255, (28, 50, 3), np.uint8)
    for t in range(64):
        w.write(cv2.resize(np.roll(base, t, 1), (398, 224)))
    w.release()
    paths.append(p)
K = os.environ.get('KCFG') or ('configs/recognition/stan/stan-attn_vit-base-'
                               'p16-res224-clip-pre_1x1x8_k400-rgb.py')
M = os.environ.get('MCFG') or ('configs/retrieval/stan/stan-attn_vit-base-'
                               'p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py')
tp = {}
for name, cfg, task in (('B16_k400_predict', K, 'predict'),
                        ('B32_msrvtt_embed', M, 'embed')):
    for dtype, comp in (('fp32', False), ('bf16', False), ('bf16', True)):
        inf = StanInferencer(cfg, device=DEV, dtype=dtype, compile=comp,
                             random_weights=True)
        warm = inf.warm_up(task, 16)
        for workers in (4, 12):
            t0 = time.perf_counter()
            n = sum(1 for _ in inf.iter_videos(paths, task, None, 16,
                                               workers))
            if DEV == 'cuda':
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            tp[f'{name}_{dtype}{"_compiled" if comp else ""}_w{workers}'] \
                = dict(videos_per_s=round(n / dt, 1), warm_s=round(warm, 1))
        print(name, dtype, comp, tp, flush=True)
out['throughput_32_videos_398x224_64frames'] = tp
os.makedirs(os.environ.get('OUT', '/tmp/out'), exist_ok=True)
Path(os.environ.get('OUT', '/tmp/out'), 'inferencer_gpu.json').write_text(
    json.dumps(out, indent=1))
print(json.dumps(out, indent=1))
