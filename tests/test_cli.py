"""The ``frossl-plugin`` command line itself: unknown flags, where errors go, the help text."""

import subprocess

import pytest
from helpers import HOST_PATH, requires_host

from frossl_plugin.cli import build_parser, main


@pytest.fixture
def no_launch(monkeypatch):
    """Fails a test that would start a process."""

    def popen(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", popen)


def test_a_mistyped_flag_of_compare_is_an_error_before_anything_starts(tmp_path, capsys, no_launch):
    argv = ["compare", "--target-accuracy", "25", "--epochs", "1", "--data", "cifar10"]
    code = main(argv + ["--out", str(tmp_path / "o"), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""  # not even the dry run's sweep command
    assert err.startswith("usage: frossl-plugin compare ")
    assert (
        "frossl-plugin compare: error: unrecognized argument --target-accuracy "
        "(did you mean --target-acc?)" in err
    )
    assert not (tmp_path / "o").exists()


def test_every_unknown_flag_is_named_with_or_without_a_close_one(tmp_path, capsys, no_launch):
    argv = ["compare", "--epochs", "1", "--data", "cifar10", "--dry-run", "seed=4"]
    assert main(argv + ["--target-metirc=knn", "--frobnicate", "-x"]) == 2
    err = capsys.readouterr().err
    assert (
        "unrecognized arguments --target-metirc (did you mean --target-metric?), "
        "--frobnicate, -x; Hydra overrides (key=value) never start with '-'." in err
    )


@requires_host
@pytest.mark.host
def test_a_hydra_override_still_passes_through(tmp_path, capsys, no_launch):
    argv = ["compare", "--epochs", "1", "--data", "cifar10", "--host", str(HOST_PATH)]
    code = main(argv + ["--out", str(tmp_path / "o"), "--dry-run", "optimizer.batch_size=64"])
    out, err = capsys.readouterr()
    assert code == 0 and "error" not in err
    sweep_command = next(line for line in out.splitlines() if "main_pretrain.py" in line)
    assert sweep_command.endswith(" optimizer.batch_size=64")


def test_errors_go_to_stderr(tmp_path, capsys, no_launch):
    argv = ["compare", "--epochs", "0", "--data", "cifar10", "--out", str(tmp_path), "--dry-run"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "frossl-plugin compare: error: --epochs must be >= 1, but found 0.\n"


def test_a_command_without_overrides_still_refuses_extra_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "somewhere", "--target-accuracy", "25"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --target-accuracy 25" in capsys.readouterr().err


def test_compare_help_starts_with_a_sentence_saying_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["compare", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    description = help_text.split("\n\n")[1]  # after the usage
    first_line = description.splitlines()[0]
    assert first_line == (
        "Sweep FroSSL and the host's baselines over seeds with Hydra, then write the report."
    )
