import numpy as np
import pytest

import tinyllm


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    tinyllm.manual_seed(0)
    np.random.seed(0)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run only where a GPU and the tinyllm._cuda module are present."""
    try:
        import cupy
        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU found")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
