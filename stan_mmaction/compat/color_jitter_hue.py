"""Repair 11: color_jitter_hue.

Breakage: mmaction2's ``ColorJitter.adjust_hue`` adds ``int(factor * 255)``
to the uint8 hue channel. With a negative factor (half the draws of the
default ``hue=0.1``) numpy 2 refuses a negative Python int in uint8
arithmetic (NEP 50): ``OverflowError: Python integer -13 out of bounds for
uint8``, so a pipeline with ``ColorJitter`` fails at random; numpy 1
computed it in int16. -> :func:`patch_color_jitter_hue`

Detected by: ``ColorJitter.adjust_hue`` raises ``OverflowError`` on a
one-pixel image with factor -0.05 (a fixed upstream or numpy 1 does not).

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: test_color_jitter_hue_overflows_without_compat,
test_color_jitter_hue_matches_numpy1_arithmetic, and MMAction2's own
``tests/datasets/transforms/test_processing.py`` (docs/reliability.md).
"""
_PROBE_FACTOR = -0.05


def _adjust_hue(img, factor):
    """``ColorJitter.adjust_hue`` with the hue sum in int16, as numpy 1's
    value-based casting computed it: the same result, any sign of
    ``factor``."""
    import cv2
    import numpy as np
    img = np.clip(img, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    offset = int(factor * 255)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + offset) % 180
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img.astype(np.float32)


def hue_overflows(adjust_hue) -> bool:
    import numpy as np
    try:
        adjust_hue(np.zeros((1, 1, 3), np.float32), _PROBE_FACTOR)
    except OverflowError:
        return True
    return False


def patch_color_jitter_hue() -> bool:
    from mmaction.datasets.transforms.processing import ColorJitter
    if ColorJitter.adjust_hue is _adjust_hue or \
            not hue_overflows(ColorJitter.adjust_hue):
        return False
    ColorJitter.adjust_hue = staticmethod(_adjust_hue)
    return True
