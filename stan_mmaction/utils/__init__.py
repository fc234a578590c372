from .config import build_model_without_weights, load_config, strip_pretrained
from .flops import count_flops, flop_counter

__all__ = [
    'build_model_without_weights', 'count_flops', 'flop_counter',
    'load_config',
    'strip_pretrained'
]
