"""The unit tests' process runs torch at one thread.

Their models are tiny: a second intra-op thread buys them nothing, and where the machine's other cores
are busy (a 2-core CI runner, other suites) OpenMP's waiting threads slow them many-fold (the unit folder
measured 16 minutes at two threads on a loaded 2-core machine, a fraction of that at one). The tests about
threads set their own count and put it back (test_decoder_cache, test_cross_memory, test_search_syncs,
test_translate_stages), as the translation actors set theirs (pipeline/runtime/cpu_decoding.py).
"""

import sys

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def starts_no_ray():
    """A unit test starts no Ray: the unit tests run side by side in several processes (tests/conftest.py),
    and `-m "not e2e and not integration"` promises a run without Ray. A test that needs Ray belongs in
    tests/integration. In the whole suite the integration tests' in-process Ray (`local_ray`, session-wide)
    may already be up: only a test that brings Ray up fails."""
    before = ray_is_up()
    yield
    assert before or not ray_is_up(), "this test started Ray: move it to tests/integration"


def ray_is_up() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Back to one thread after each test: an actor built with more threads, or a CTranslate2 translator
    (it sets the OpenMP thread count, which torch shares: a translator of intra_threads=2 left every later
    test at two threads), changes it for the whole process."""
    yield
    torch.set_num_threads(1)
