"""Argument checks that name the argument: a config typo (``'2'`` for
``2``) fails in ``__init__`` with the argument and the expected type, not
deep inside a forward pass."""
import numbers
from typing import Optional


def check_int(name: str, value, low: Optional[int] = None,
              high: Optional[int] = None) -> int:
    """``value`` as an int in ``[low, high]`` (bounds optional); bools and
    strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be an int, got '
                        f'{type(value).__name__} {value!r}')
    _check_range(name, value, low, high)
    return int(value)


def check_float(name: str, value, low: Optional[float] = None,
                high: Optional[float] = None) -> float:
    """``value`` as a float in ``[low, high]``; ints are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a number, got '
                        f'{type(value).__name__} {value!r}')
    _check_range(name, value, low, high)
    return float(value)


def _check_range(name, value, low, high):
    if (low is not None and value < low) or (high is not None
                                             and value > high):
        bounds = f'[{"-inf" if low is None else low}, ' \
                 f'{"inf" if high is None else high}]'
        raise ValueError(f'{name}={value!r} must be in {bounds}')


def _int_at_least(text: str, minimum: int, what: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected {what}, got {text!r}') from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f'expected {what}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` for counts: an int >= 1 (``--window -5`` is an
    argument error, not a crash inside the tool)."""
    return _int_at_least(text, 1, 'a positive integer')


def non_empty_text(text: str) -> str:
    """argparse ``type`` for a query: some non-blank text."""
    import argparse
    if not text.strip():
        raise argparse.ArgumentTypeError('expected some text, got an empty '
                                         'string')
    return text


def non_negative_int(text: str) -> int:
    """argparse ``type`` for an int >= 0 (e.g. a number of workers)."""
    return _int_at_least(text, 0, 'an integer >= 0')
