"""STAN on HuggingFace's ``CLIPVisionModel``: the path the authors' code
takes, for the side-by-side of ``tools/analysis_tools/benchmark.py
--hf-reference``.

:class:`HFStanReference` is the architecture of our ``StanCLIPBackbone``
(STAN-attn) written the way the authors' code runs it: CLIP is
``transformers.CLIPVisionModel`` with eager attention (separate q, k, v
projections, matmul-softmax-matmul, QuickGELU as ``x * sigmoid(1.702 x)``),
its hidden states returned as a tuple; each STAN layer's spatial module is
a copy of an HF ``CLIPEncoderLayer`` run per frame on [branch CLS, frame
patches] (CLS copied to every frame, the T CLS outputs averaged), the
temporal module an ``nn.MultiheadAttention`` called as a module over the
``T`` tokens of each location. It takes our backbone's weights
(:func:`hf_reference_from`), so both give the same embedding
(``tests/test_benchmark.py``) and a timing difference is the code path's.
``transformers`` is needed only here.
"""
import copy

import torch
import torch.nn as nn

from ..models.checkpoint_formats import BLOCK_RENAMES, VISION_RENAMES


def _openai_block_to_hf(state: dict, prefix: str, out: dict,
                        out_prefix: str) -> None:
    """One open_clip block's tensors under ``prefix`` -> HF names under
    ``out_prefix`` (q, k, v split from ``in_proj``)."""
    for kind in ('weight', 'bias'):
        q, k, v = state[f'{prefix}attn.in_proj_{kind}'].chunk(3)
        for name, part in zip('qkv', (q, k, v)):
            out[f'{out_prefix}self_attn.{name}_proj.{kind}'] = part
    for hf, ours in BLOCK_RENAMES:
        for kind in ('weight', 'bias'):
            out[f'{out_prefix}{hf}{kind}'] = state[f'{prefix}{ours}{kind}']


class HFStanReference(nn.Module):
    """STAN-attn on ``CLIPVisionModel`` (see the module docstring).

    Build with :func:`hf_reference_from`. Input ``(B, 3, T, H, W)``,
    output the ``(B, E)`` projected embedding, as our backbone's.
    """

    def __init__(self, clip: nn.Module, spatial: nn.ModuleList,
                 temporal: nn.ModuleList, temporal_fc: nn.ModuleList,
                 temporal_norm: nn.ModuleList, temporal_embedding: nn.Module,
                 proj: torch.Tensor):
        super().__init__()
        self.clip = clip
        self.spatial = spatial
        self.temporal = temporal
        self.temporal_fc = temporal_fc
        self.temporal_norm = temporal_norm
        self.temporal_embedding = temporal_embedding
        self.proj = nn.Parameter(proj)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = imgs.shape
        frames = imgs.transpose(1, 2).flatten(0, 1)
        out = self.clip(pixel_values=frames, output_hidden_states=True)
        k = len(self.spatial)
        hidden = out.hidden_states[-k:]  # outputs of the last K layers
        vm = self.clip.vision_model
        emb = vm.embeddings
        pos = emb.position_embedding.weight
        tokens = hidden[0].unflatten(0, (b, t))
        cls = tokens[:, :, 0].mean(1)
        patches = tokens[:, :, 1:] + pos[1:] + \
            self.temporal_embedding.weight[:t, None]
        cls = (cls + emb.class_embedding + pos[0]) / 2
        for i in range(k):
            if i > 0:
                tokens = hidden[i].unflatten(0, (b, t))
                cls = cls + tokens[:, :, 0].mean(1)
                patches = patches + tokens[:, :, 1:]
            p = patches.shape[2]
            # temporal: MHA over the T tokens of each location
            x = self.temporal_norm[i](patches).transpose(1, 2).flatten(0, 1)
            x = self.temporal[i](x, x, x, need_weights=False)[0]
            x = x.unflatten(0, (b, p)).transpose(1, 2)
            patches = patches + self.temporal_fc[i](x)
            # spatial: the CLIP layer per frame on [CLS, patches]
            layer = self.spatial[i]
            seq = torch.cat([cls[:, None, None].expand(b, t, 1, -1),
                             patches], dim=2).flatten(0, 1)
            a = layer.self_attn(layer.layer_norm1(seq))[0]
            a = a.unflatten(0, (b, t))
            cls = cls + a[:, :, 0].mean(1)
            patches = patches + a[:, :, 1:]
            cls = cls + layer.mlp(layer.layer_norm2(cls))
            patches = patches + layer.mlp(layer.layer_norm2(patches))
        frame_cls = out.last_hidden_state[:, 0].unflatten(0, (b, t))
        x = vm.post_layernorm(frame_cls + cls[:, None])
        return (x @ self.proj).mean(1)


def is_stan_attn(backbone: nn.Module) -> bool:
    """Whether ``backbone`` has a STAN branch whose temporal modules are
    attention (STAN-attn: what the HF reference is written for)."""
    branch = getattr(backbone, 'stan_branch', None)
    return branch is not None and all(
        hasattr(layer.temporal, 'attn') for layer in branch.layers)


def hf_reference_from(backbone: nn.Module) -> HFStanReference:
    """An :class:`HFStanReference` with ``backbone``'s weights (a
    ``StanCLIPBackbone`` with the attention temporal module, ``out='proj'``,
    positional embedding at its trained grid); ValueError for any other
    backbone."""
    if not is_stan_attn(backbone):
        raise ValueError('the HF reference is of STAN-attn (a STAN branch '
                         'with the attention temporal module)')
    from transformers import CLIPVisionConfig, CLIPVisionModel
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer
    v = backbone.visual
    blocks = v.transformer.resblocks
    width = backbone.embed_dims
    quick = type(blocks[0].mlp.gelu).__name__ == 'QuickGELU'
    config = CLIPVisionConfig(
        hidden_size=width, intermediate_size=blocks[0].mlp.c_fc.out_features,
        num_hidden_layers=len(blocks),
        num_attention_heads=blocks[0].attn.num_heads,
        image_size=v.image_size[0], patch_size=backbone.patch_size,
        hidden_act='quick_gelu' if quick else 'gelu', layer_norm_eps=1e-5,
        attn_implementation='eager')
    clip = CLIPVisionModel(config)
    state = {k: t.detach() for k, t in v.state_dict().items()}
    hf = {}
    inverse = {ours: theirs for theirs, ours in VISION_RENAMES.items()}
    for ours, theirs in inverse.items():
        where = 'embeddings.' if theirs in (
            'class_embedding', 'patch_embedding.weight',
            'position_embedding.weight') else ''
        hf[f'vision_model.{where}{theirs}'] = state[ours]
    for n in range(len(blocks)):
        _openai_block_to_hf(state, f'transformer.resblocks.{n}.', hf,
                            f'vision_model.encoder.layers.{n}.')
    missing, unexpected = clip.load_state_dict(hf, strict=False)
    missing = [k for k in missing if not k.endswith('position_ids')]
    if missing or unexpected:
        raise RuntimeError(f'HF CLIP weights: missing {missing}, unexpected '
                           f'{unexpected}')
    branch = backbone.stan_branch
    spatial, temporal, fcs, norms = (nn.ModuleList() for _ in range(4))
    for layer in branch.layers:
        sp = layer.spatial
        enc = CLIPEncoderLayer(config)
        sub = {k: t.detach() for k, t in sp.state_dict().items()}
        hf_layer = {}
        _openai_block_to_hf(sub, '', hf_layer, '')
        enc.load_state_dict(hf_layer)
        spatial.append(enc)
        temporal.append(copy.deepcopy(layer.temporal.attn))
        fcs.append(copy.deepcopy(layer.temporal.temporal_fc))
        norms.append(copy.deepcopy(layer.temporal.norm))
    return HFStanReference(clip, spatial, temporal, fcs, norms,
                           copy.deepcopy(branch.temporal_embedding),
                           v.proj.detach().clone()).eval()


def side_by_side(backbone: nn.Module, x: torch.Tensor, dtypes, repeats: int,
                 warmup: int = 1, device: str = 'cpu') -> list:
    """Our backbone against :func:`hf_reference_from` of it, each dtype in
    ``dtypes`` (``'fp32'``, ``'bf16'``: the whole model cast), the runs of
    all in one alternation. Returns rows ``dtype, ours_s, hf_s, speedup,
    max_abs_diff`` (the two embeddings' largest difference)."""
    from .cases import DTYPES
    from .profiling import measure_alternating
    reference = hf_reference_from(backbone).to(x.device)
    models, tasks = {}, {}
    for name in dtypes:
        dtype = DTYPES[name]
        ours = copy.deepcopy(backbone).to(dtype).eval()
        theirs = copy.deepcopy(reference).to(dtype).eval()
        xi = x.to(dtype)
        models[name] = (ours, theirs, xi)
        for key, model in (('ours', ours), ('hf', theirs)):
            tasks[(name, key)] = (lambda m=model, v=xi: _infer(m, v))
    timing = measure_alternating(tasks, repeats, warmup, device)
    rows = []
    for name in dtypes:
        ours, theirs, xi = models[name]
        diff = (_infer(ours, xi).float() -
                _infer(theirs, xi).float()).abs().max().item()
        a, b = timing[(name, 'ours')], timing[(name, 'hf')]
        rows.append(dict(dtype=name, ours_s=a['seconds'],
                         hf_s=b['seconds'],
                         speedup=b['seconds'] / a['seconds'],
                         max_abs_diff=diff))
    return rows


def _infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)
