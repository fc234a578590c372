"""Training memory per device for DDP, FSDP and ZeRO-2, with and without
activation checkpointing (``tools/analysis_tools/memory_plan.py``).

Parameters, gradients and optimizer states are counted from the model
(AdamW: two fp32 moments per trainable parameter). Activations are the
tensors autograd saves for the backward pass, counted in one forward pass
of the model on the ``meta`` device (shapes only, no compute, no memory:
L/14 at 64 frames costs a second), with attention as the fused kernels run
it (the CPU flash kernel's saved tensors: q, k, v, output, log-sum-exp; the
GPU flash and memory-efficient kernels save the same). With checkpointing,
each CLIP block and STAN layer keeps only its input, and the backward pass
recomputes one block at a time: the saved tensors outside blocks, plus
every block's input, plus the largest block's own.

The per-device plan (bytes) for N GPUs, bf16 compute:

- DDP + AMP: fp32 weights (4 P), fp32 gradients (4 T) and DDP's gradient
  buckets (4 T), AdamW states (8 T), autocast's bf16 weight copies (2 P),
  bf16 activations.
- FSDP (FULL_SHARD, bf16 mixed precision, ``configs/_base_/strategies/
  fsdp.py``): fp32 weight shards (4 P / N, frozen root parameters whole),
  gradient shards (4 T / N), AdamW state shards (8 T / N), the gathered
  bf16 parameters of the largest unit twice (running + prefetched) and its
  bf16 gradients (6 U), bf16 activations.
- ZeRO-2 (bf16, ``deepspeed_zero2.py``): bf16 weights (2 P), fp32 master
  and AdamW shards (12 T / N), gradient shards (4 T / N) and the reduce
  buckets (2 x bucket x 2 bytes; the base's ``reduce_bucket_size``, 2e8
  elements), bf16 activations.

(P parameters, T trainable, U the largest FSDP unit.) Not counted: the CUDA
context and the allocator's fragmentation; the plan says a setting fits
when its total is at most 90% of the GPU's memory.
"""
import contextlib
import weakref
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

GiB = 1024**3
#: Share of a GPU's memory a plan may use (the rest: CUDA context, the
#: allocator's fragmentation, communication buffers not modelled).
USABLE = 0.9
STRATEGIES = ('DDP', 'FSDP', 'ZeRO-2')


@contextlib.contextmanager
def _fused_attention_on_meta():
    """On ``meta`` tensors SDPA picks its unfused math path (which saves the
    attention matrix); run the CPU flash kernel's meta function instead, as
    the real CPU (and GPU) training runs do. Masked calls keep SDPA."""
    original = F.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0,
             is_causal=False, **kwargs):
        if query.device.type == 'meta' and attn_mask is None and \
                not kwargs:
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, dropout_p, is_causal)[0]
        return original(query, key, value, attn_mask=attn_mask,
                        dropout_p=dropout_p, is_causal=is_causal, **kwargs)

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


@dataclass
class Activations:
    """Bytes autograd saves in one training forward pass."""
    total: int
    blocks: List[int] = field(default_factory=list)
    block_inputs: List[int] = field(default_factory=list)
    largest: int = 0  # the largest single tensor saved

    @property
    def backward_transient(self) -> int:
        """Gradients alive beside the saved tensors in the backward pass:
        two of the largest saved tensor (a block's MLP hidden: the
        gradient arriving at it and the one leaving it)."""
        return 2 * self.largest

    @property
    def peak(self) -> int:
        """Without checkpointing: everything saved, plus the backward's
        transient gradients."""
        return self.total + self.backward_transient

    @property
    def checkpointed(self) -> int:
        """With every block checkpointed: the rest, the blocks' inputs, one
        block recomputed at a time, plus the backward's transient
        gradients."""
        if not self.blocks:
            return self.peak
        return (self.total - sum(self.blocks) + sum(self.block_inputs) +
                max(self.blocks) + self.backward_transient)


def count_activations(model: nn.Module,
                      forward: Callable[[nn.Module], torch.Tensor],
                      dtype: torch.dtype = torch.float32,
                      device: str = 'meta') -> Activations:
    """Run ``forward(model)`` once in training mode (no checkpointing) and
    count the bytes of the tensors autograd saves, each storage once,
    parameters excluded, attributed to the CLIP block or STAN layer running
    when saved. ``model`` is moved to ``device`` (``meta``: no compute, no
    memory; use a copy you can spare) and cast to ``dtype``; ``forward``
    makes its inputs on that device and returns the loss: what its graph
    holds when it returns is what counts (tensors saved by parts of the
    graph already dropped don't; counting those, and storage addresses
    reused after them, made the count depend on the allocator)."""
    from ..engine.sharding import BLOCK_TYPES
    model = model.to(device=device, dtype=dtype)
    model.train()
    for module in model.modules():  # the model, towers, open_clip parts
        if hasattr(module, 'set_grad_checkpointing'):
            module.set_grad_checkpointing(False)
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    # storage key -> (bytes, index of the block running when it was saved)
    seen: Dict[int, Tuple[int, Optional[int]]] = {}
    stack: List[int] = []
    block_inputs: List[int] = []
    # what grad_checkpointing recomputes: CLIP blocks and STAN layers (the
    # FSDP units)
    blocks: List[nn.Module] = [m for m in model.modules()
                               if isinstance(m, BLOCK_TYPES)]
    index = {id(m): i for i, m in enumerate(blocks)}
    handles = []

    def pre(module, args):
        stack.append(index[id(module)])
        block_inputs[index[id(module)]] = sum(
            a.untyped_storage().nbytes() for a in args
            if isinstance(a, torch.Tensor))

    def post(module, args, output):
        stack.pop()

    for m in blocks:
        block_inputs.append(0)
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))

    class _Saved:
        """What autograd keeps for one saved tensor. While it lives, its
        storage cannot be freed, so a storage key can't be taken by a new
        tensor; when autograd drops it (a part of the graph nothing
        depends on), the storage stops counting."""
        __slots__ = ('tensor', '__weakref__')

        def __init__(self, tensor):
            self.tensor = tensor

    holders: Dict[int, int] = {}  # storage key -> live _Saved objects

    def release(key):
        holders[key] -= 1
        if not holders[key]:
            del holders[key], seen[key]

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in params:
            return tensor
        if key not in seen:
            seen[key] = (storage.nbytes(), stack[-1] if stack else None)
        holders[key] = holders.get(key, 0) + 1
        saved = _Saved(tensor)
        weakref.finalize(saved, release, key)
        return saved

    def unpack(saved):
        return saved.tensor if isinstance(saved, _Saved) else saved

    try:
        with _fused_attention_on_meta(), \
                torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            loss = forward(model)
        # what the graph hanging from the loss holds when the backward
        # would start
        alive = list(seen.values())
        del loss
    finally:
        for handle in handles:
            handle.remove()
    per_block = [0] * len(blocks)
    for nbytes, block in alive:
        if block is not None:
            per_block[block] += nbytes
    sizes = [nbytes for nbytes, _ in alive]
    return Activations(total=sum(sizes), blocks=per_block,
                       block_inputs=block_inputs,
                       largest=max(sizes, default=0))


@dataclass
class ModelCounts:
    params: int
    trainable: int
    frozen_root: int  # frozen parameters FSDP leaves out (kept whole)
    largest_unit: int


def count_model(model: nn.Module) -> ModelCounts:
    from ..engine.sharding import (frozen_root_params, fsdp_units,
                                   unit_param_ids)
    units = fsdp_units(model)
    frozen = frozen_root_params(model, units)
    inside = unit_param_ids(units)
    root = sum(p.numel() for p in model.parameters()
               if id(p) not in inside) - sum(p.numel() for p in frozen)
    sizes = [sum(p.numel() for p in u.parameters()) for u in units]
    return ModelCounts(
        params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters()
                      if p.requires_grad),
        frozen_root=sum(p.numel() for p in frozen),
        largest_unit=max(sizes + [root]))


@dataclass
class PlanRow:
    strategy: str
    checkpointing: bool
    weights: float
    gradients: float
    optimizer: float
    working: float
    activations: float

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer +
                self.working + self.activations)

    def as_dict(self) -> dict:
        return dict(asdict(self), total=self.total)


def plan(counts: ModelCounts, activations_bf16: Activations, gpus: int,
         bucket_elements: int = int(2e8)) -> List[PlanRow]:
    """Bytes per device of each strategy, without and with checkpointing
    (see the module doc for the model of each)."""
    p, t, n = counts.params, counts.trainable, gpus
    rows = []
    for ckpt in (False, True):
        act = activations_bf16.checkpointed if ckpt else \
            activations_bf16.peak
        rows.append(PlanRow('DDP', ckpt, 4 * p, 8 * t, 8 * t, 2 * p, act))
        sharded = counts.params - counts.frozen_root
        rows.append(PlanRow('FSDP', ckpt,
                            4 * sharded / n + 4 * counts.frozen_root,
                            4 * t / n, 8 * t / n, 6 * counts.largest_unit,
                            act))
        rows.append(PlanRow('ZeRO-2', ckpt, 2 * p + 4 * t / n,
                            4 * t / n + 2 * bucket_elements * 2, 8 * t / n,
                            0, act))
    return rows


def single_process_fp32(counts: ModelCounts, activations_fp32: Activations,
                        checkpointing: bool) -> float:
    """What one fp32 training step adds on top of the built model in one
    process (the CPU measurement's setting): gradients, AdamW states and
    activations."""
    act = activations_fp32.checkpointed if checkpointing else \
        activations_fp32.peak
    return 4 * counts.trainable + 8 * counts.trainable + act
