"""spectra tests: one BLAS thread (threaded OpenBLAS on 2 shared cores is several times slower)."""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):
        yield
