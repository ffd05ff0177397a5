from __future__ import annotations

import os
import platform
import re
from typing import Dict, Optional

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, :func:`platform.processor` elsewhere)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


def blas_library() -> str:
    """The BLAS torch was built with (``BLAS_INFO`` of :func:`torch.__config__.show`, e.g. ``mkl``,
    ``openblas``), with MKL's version when torch reports it."""
    config = torch.__config__.show()
    m = re.search(r'BLAS_INFO=([^,\s]+)', config)
    name = m.group(1) if m else 'unknown'
    mkl = re.search(r'Math Kernel Library Version ([0-9.]+)', config)
    return f'{name} {mkl.group(1)}' if name == 'mkl' and mkl else name


def host_description(device: Optional[torch.device | str] = None) -> Dict[str, object]:
    r"""What a speed figure depends on, for benchmarks to print beside it: the CPU model, its logical cores,
    torch's thread count, the BLAS library and the vector instruction set torch dispatches to, torch's
    version, and the GPU's name for a CUDA :obj:`device`. Sparse kernels are memory-bound, so the same code
    can sit at very different multiples of a host's bandwidth bound on two CPUs of one machine kind."""
    info: Dict[str, object] = {
        'cpu': cpu_model(),
        'logical_cores': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'blas': blas_library(),
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'torch': torch.__version__,
    }
    if device is not None and torch.device(device).type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def format_host(info: Dict[str, object]) -> str:
    """One line of :func:`host_description`'s output."""
    gpu = f", GPU {info['gpu']}" if 'gpu' in info else ''
    return (f"host: {info['cpu']} ({info['logical_cores']} logical cores, {info['torch_threads']} torch threads, "
            f"{info['cpu_capability']}), BLAS {info['blas']}, torch {info['torch']}{gpu}")
