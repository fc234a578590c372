"""Analysis: FLOP counts, the training-memory plan, measurement primitives
(peak memory, timing in alternation, matmul rate) and the benchmark's model
cases, for the analysis tools (``tools/analysis_tools/``). Above the
engine: nothing in the library's lower floors imports it."""
from .flops import count_flops, flop_counter

__all__ = ['count_flops', 'flop_counter']
