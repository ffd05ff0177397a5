import torch

from pyg_diffcl.ops import format_host, host_description
from pyg_diffcl.ops.host import blas_library


def test_host_description_names_what_a_speed_figure_depends_on():
    info = host_description()
    assert info['torch_threads'] == torch.get_num_threads() and info['torch'] == torch.__version__
    assert info['blas'].split()[0] in torch.__config__.show()  # the BLAS torch itself reports
    assert isinstance(info['cpu'], str) and info['cpu'] and 'gpu' not in info
    line = format_host(info)
    assert line.startswith('host: ') and info['cpu'] in line and blas_library() in line
