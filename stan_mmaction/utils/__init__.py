from .config import build_model_without_weights, strip_pretrained
from .flops import count_flops, flop_counter

__all__ = [
    'build_model_without_weights', 'count_flops', 'flop_counter',
    'strip_pretrained'
]
