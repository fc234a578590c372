"""Helpers for building models from configs without downloading weights."""
import copy

from mmaction.registry import MODELS

#: config keys that point at weights to download or load.
_WEIGHT_KEYS = ('pretrained', 'pretrained2d', 'clip_pretrained')


def strip_pretrained(cfg):
    """A copy of a model config with every weight source set to ``None``
    (``pretrained`` keys and ``init_cfg`` of type ``Pretrained``), so it
    builds offline with random weights."""
    cfg = copy.deepcopy(cfg)

    def visit(node):
        if isinstance(node, dict):
            for key in list(node):
                if key in _WEIGHT_KEYS and isinstance(node[key], str):
                    node[key] = None
                elif key == 'init_cfg' and _is_pretrained(node[key]):
                    node[key] = None
                else:
                    visit(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)

    def _is_pretrained(init_cfg):
        items = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
        return any(isinstance(i, dict) and i.get('type') == 'Pretrained'
                   for i in items)

    visit(cfg)
    return cfg


def load_config(path: str):
    """``Config.fromfile`` that also takes ``package::relative/path.py``
    (e.g. ``mmaction::recognition/tsn/...py``), as MMEngine does for
    ``_base_`` entries."""
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def build_model_without_weights(model_cfg):
    """Build a ``MODELS`` config with weights stripped (random init)."""
    return MODELS.build(strip_pretrained(model_cfg))
