from .backbone import BRANCH_KEY, StanCLIPBackbone
from .clip import (ARCHS, CLIP_MEAN, CLIP_STD, build_clip, build_text,
                   build_visual, get_arch)
from .clip_weights import (CheckpointMismatchError, load_clip_state_dict,
                           load_text_weights, load_visual_weights,
                           resolve_pretrained)
from .data_preprocessors import RetrievalDataPreprocessor
from .retrieval_head import VideoTextRetrievalHead, all_gather_with_grad
from .retriever import StanVideoTextRetriever
from .stan_branch import STANBranch, STANSpatialBlock
from .temporal import STANTemporalAttention, STANTemporalConv
from .text import CLIPTextEncoder
from .zero_shot import (CLASS_NAME_ONLY, DEFAULT_TEMPLATES, TextClassifierHead,
                        read_class_names, text_classifier)

__all__ = [
    'ARCHS', 'BRANCH_KEY', 'CLASS_NAME_ONLY', 'CLIP_MEAN', 'CLIP_STD',
    'CLIPTextEncoder',
    'CheckpointMismatchError', 'DEFAULT_TEMPLATES',
    'RetrievalDataPreprocessor', 'STANBranch', 'STANSpatialBlock',
    'STANTemporalAttention', 'STANTemporalConv', 'StanCLIPBackbone',
    'StanVideoTextRetriever', 'TextClassifierHead', 'VideoTextRetrievalHead',
    'all_gather_with_grad', 'build_clip', 'build_text', 'build_visual',
    'get_arch', 'load_clip_state_dict', 'load_text_weights',
    'load_visual_weights', 'read_class_names', 'resolve_pretrained',
    'text_classifier'
]
