"""Shared pytest configuration.

Hypothesis profiles (used by tests/test_fuzz.py; they apply to every
hypothesis test of the suite):

* ``ci`` -- the default: deterministic (derandomized, no example database),
  no deadline, a bounded number of examples per test so the fuzz module runs
  in about a minute on CI's two cores, and no shrinking (a failure is
  reported as found, with the call and a reproducer in its notes, instead of
  spending minutes minimizing it).
* ``long`` -- ``pytest tests/test_fuzz.py --hypothesis-profile=long``:
  random, 7000 examples per test (>= 10^5 over the 16 losses), shrinks a
  failure to a minimal example and prints its reproduction blob.
* ``dev`` -- a quick random run while editing (no shrinking).
* ``aarch64`` -- ``make test-aarch64`` (tools/test_aarch64.sh): ``ci`` with
  30 examples per test, since everything runs ~10x slower under qemu.
"""
from hypothesis import HealthCheck, Phase, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.filter_too_much]

settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK,
                          phases=[Phase.explicit, Phase.generate])
settings.register_profile("long", max_examples=7000, deadline=None, derandomize=False,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK)
settings.register_profile("aarch64", max_examples=30, deadline=None, derandomize=True,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK,
                          phases=[Phase.explicit, Phase.generate])
settings.register_profile("dev", max_examples=300, deadline=None, print_blob=True,
                          database=None, suppress_health_check=_SLOW_OK,
                          phases=[Phase.explicit, Phase.generate])


def pytest_configure(config):
    # "ci" unless --hypothesis-profile chose another one (hypothesis' plugin
    # loads that one itself)
    try:
        chosen = config.getoption("hypothesis_profile")
    except ValueError:
        chosen = None
    if chosen is None:
        settings.load_profile("ci")


# ---------------------------------------------------------------------------
# Open bugs found by the fuzzer and the concurrency tests (issue 5), listed
# here so that CI stays green while they are being fixed; each still runs
# (except the fork hangs, which would only burn the 15 s timeout) and is
# reported as XFAIL, or XPASS once fixed.  Remove a line when its bug is.
import pytest  # noqa: E402

_KNOWN_OPEN = {
    "test_concurrency.py::test_fork_multiprocessing_after_openmp":
        ("a forked child that calls a multi-threaded fastloss hangs (libgomp's "
         "pool does not survive fork)", False),
    "test_concurrency.py::test_os_fork_after_openmp":
        ("a forked child that calls a multi-threaded fastloss hangs (libgomp's "
         "pool does not survive fork)", False),
    "test_fuzz.py::test_fuzz": ("fuzzer findings listed by the test_found_* reproducers", True),
    "test_fuzz.py::test_found_": ("fuzzer finding, open (see the test's docstring)", True),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        nid = item.nodeid.split("tests/", 1)[-1]
        if nid not in _FAILING_AT_HEAD:
            continue
        for key, (reason, run) in _KNOWN_OPEN.items():
            if nid.startswith(key):
                item.add_marker(pytest.mark.xfail(reason="open bug: " + reason, run=run,
                                                  strict=False))
                break


# the exact test ids that failed at the commit that added the list
_FAILING_AT_HEAD = {
}
