"""The measurement primitives (stan_mmaction.analysis.profiling) and
stan_mmaction.utils.system."""
import pytest
import torch

from stan_mmaction.analysis.profiling import (PeakMemory, matmul_rate,
                                              measure_alternating)
from stan_mmaction.utils.system import cpu_has_native_bf16, machine


def test_peak_memory_sees_a_temporary_allocation():
    """64 MiB of new pages, written, then unmapped inside the block. (The
    pages are mapped directly: in a test process where much was allocated
    and freed before, an allocator can serve a tensor from memory it still
    holds, which adds nothing to the peak, as PeakMemory's doc warns.)"""
    import mmap
    with PeakMemory('cpu') as mem:
        block = mmap.mmap(-1, 64 * 2**20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1  # touch every page
        block.close()
    assert 60 * 2**20 < mem.peak < 200 * 2**20
    with PeakMemory('cpu') as small:
        torch.ones(16)
    assert small.peak < 8 * 2**20


def test_measure_alternating_interleaves_and_takes_the_median():
    calls = []

    def task(name):
        def run():
            calls.append(name)
        return run

    result = measure_alternating({'a': task('a'), 'b': task('b')},
                                 repeats=3, warmup=1)
    # Warm-up of each task first, then a and b in turns.
    assert calls == ['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b']
    for key in ('a', 'b'):
        runs = result[key]['runs']
        assert len(runs) == 3 and all(r >= 0 for r in runs)
        assert result[key]['seconds'] == sorted(runs)[1]
        assert 'peak_bytes' in result[key]
    with pytest.raises(ValueError, match='repeats must be >= 1'):
        measure_alternating({'a': task('a')}, repeats=0, warmup=0)


@pytest.mark.parametrize('flags,native', [
    ('fpu avx2 avx512f', False),
    ('fpu avx2 avx512f avx512_bf16', True),
    ('fpu avx2 amx_bf16 amx_tile', True),
    ('fpu avx2 avx512_bf16x', False),  # whole flags only
])
def test_native_bf16_read_from_cpuinfo_flags(flags, native):
    text = f'processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n'
    assert cpu_has_native_bf16(text) is native


def test_matmul_rate_counts_two_n_cubed():
    fn, flops = matmul_rate(torch.float32, 'cpu', n=64)
    assert flops == 2 * 64**3
    assert fn().shape == (64, 64)


def test_machine_names_the_cpu_and_torch():
    info = machine()
    assert info['cpu'] and info['torch'] == torch.__version__
    assert info['threads'] == torch.get_num_threads()
    assert isinstance(info['native_bf16'], bool)
