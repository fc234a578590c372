from .backbone import BRANCH_KEY, StanCLIPBackbone
from .clip import (ARCHS, CheckpointMismatchError, build_clip,
                   build_pretrained_visual, get_arch, load_clip_state_dict,
                   load_visual_weights)
from .stan_branch import STANBranch, STANSpatialBlock
from .temporal import STANTemporalAttention, STANTemporalConv

__all__ = [
    'ARCHS', 'BRANCH_KEY', 'CheckpointMismatchError', 'STANBranch',
    'STANSpatialBlock', 'STANTemporalAttention', 'STANTemporalConv',
    'StanCLIPBackbone', 'build_clip', 'build_pretrained_visual', 'get_arch',
    'load_clip_state_dict', 'load_visual_weights'
]
