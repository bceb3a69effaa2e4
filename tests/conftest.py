"""Fixtures shared by several test files."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests with one torch thread. They use small tensors, and when other programs
    keep the CPU busy a multi-threaded op waits for a free core at every call (ten times slower,
    measured); correctness does not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium through Playwright, shared by the browser tests (test_browser.py,
    test_jupyterlab.py): Playwright's sync API runs once per process."""
    from test_browser import launch_chromium

    yield from launch_chromium()
