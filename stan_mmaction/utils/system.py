"""What machine and process this is: native bf16 support, the machine's
description for result tables, seconds since the process started."""
import platform
import time

import torch


def cpu_has_native_bf16(cpuinfo: str = None) -> bool:
    """AVX512-BF16 or AMX (bf16 matmuls at least at the fp32 rate), read from
    ``/proc/cpuinfo`` (or the text given)."""
    if cpuinfo is None:
        try:
            with open('/proc/cpuinfo') as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith('flags'):
            flags.update(line.split(':', 1)[1].split())
    return bool({'avx512_bf16', 'amx_bf16'} & flags)


def machine() -> dict:
    """The CPU model, threads, torch's CPU kernel level, native bf16, torch
    and Python versions, and the GPU when there is one."""
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(cpu=cpu, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                native_bf16=cpu_has_native_bf16(),
                torch=torch.__version__, python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    return info


def process_seconds() -> float:
    """Seconds since this process started (Linux ``/proc``: interpreter
    start and imports included), or since this module was imported where
    ``/proc`` is missing."""
    import os
    try:
        with open('/proc/self/stat') as f:
            # Field 22 (starttime, clock ticks after boot), counted after
            # the command name, which may hold spaces.
            start = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/uptime') as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start / os.sysconf('SC_CLK_TCK'))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()
