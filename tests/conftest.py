import os
from pathlib import Path

import pytest
import torch

from tests.helpers import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', default=False, help='run slow accuracy tests')


def pytest_configure(config):
    os.environ.setdefault('PYG_DIFFCL_CACHE', str(Path(config.rootpath) / '.pytest_cache' / 'pyg_diffcl'))


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason='slow accuracy run: pass --runslow')
    skip_cuda = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'slow' in item.keywords and not config.getoption('--runslow'):
            item.add_marker(skip_slow)
        if 'cuda' in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


@pytest.fixture
def toy_data(tmp_path) -> Path:
    return write_dataset(tmp_path / 'toy')


