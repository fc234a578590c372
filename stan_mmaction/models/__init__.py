from .backbone import BRANCH_KEY, StanCLIPBackbone
from .clip import (ARCHS, CheckpointMismatchError, build_clip,
                   build_pretrained_visual, get_arch, load_clip_state_dict,
                   load_visual_weights)
from .retrieval import (CLIP_MEAN, CLIP_STD, RetrievalDataPreprocessor,
                        StanVideoTextRetriever, VideoTextRetrievalHead,
                        all_gather_with_grad)
from .stan_branch import STANBranch, STANSpatialBlock
from .temporal import STANTemporalAttention, STANTemporalConv
from .text import CLIPTextEncoder, load_text_weights
from .zero_shot import (DEFAULT_TEMPLATES, TextClassifierHead,
                        read_class_names, text_classifier)

__all__ = [
    'CLIP_MEAN', 'CLIP_STD', 'CLIPTextEncoder', 'RetrievalDataPreprocessor',
    'StanVideoTextRetriever', 'VideoTextRetrievalHead', 'all_gather_with_grad',
    'load_text_weights', 'DEFAULT_TEMPLATES', 'TextClassifierHead',
    'read_class_names', 'text_classifier', 'ARCHS', 'BRANCH_KEY', 'CheckpointMismatchError', 'STANBranch',
    'STANSpatialBlock', 'STANTemporalAttention', 'STANTemporalConv',
    'StanCLIPBackbone', 'build_clip', 'build_pretrained_visual', 'get_arch',
    'load_clip_state_dict', 'load_visual_weights'
]
