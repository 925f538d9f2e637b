"""pytest plugin: with FROSSL_PLUGIN_REQUIRE_ALL_TESTS=1, a skipped test fails the run.

CI sets it, because CI has the host and DALI: there, a test that skips for want of either hides a
broken integration. Only tests that need CUDA may still skip; their reason must say "CUDA".
"""

import os

import pytest

REQUIRE_ALL_TESTS = "FROSSL_PLUGIN_REQUIRE_ALL_TESTS"
ALLOWED_SKIP_WORD = "CUDA"


def skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def forbidden_skips(stats) -> list:
    return [
        (report.nodeid, skip_reason(report))
        for report in stats.get("skipped", [])
        if ALLOWED_SKIP_WORD not in skip_reason(report)
    ]


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get(REQUIRE_ALL_TESTS) != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = forbidden_skips(reporter.stats) if reporter is not None else []
    if not skipped:
        return
    reporter.write_line(
        f"{REQUIRE_ALL_TESTS}=1: {len(skipped)} test(s) skipped for a reason other than "
        f"{ALLOWED_SKIP_WORD}; every test must run here:",
        red=True,
    )
    for nodeid, reason in skipped:
        reporter.write_line(f"  {nodeid or '(collection)'}: {reason}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
