"""The experiment CLIs: one-line user errors, no debris after a failed run, defaults in --help."""

import pytest

from dwsjax.data import DATA_DIR_ENV
from dwsjax.recipes import DEFAULT_RECIPE
from dwsjax.run import DEFAULT_EPOCHS, RunConfig
from experiments import classify, fit_inrs, reproduce, ssl, views
from experiments.cli import run_cli


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """A data directory without MNIST and no TFDS fallback."""
    monkeypatch.setattr("dwsjax.data.images.tfds_installed", lambda: False)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    (tmp_path / "data").mkdir()


def test_a_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path, no_mnist):
    argv = ["--dataset", "mnist", "--objects", "4", "--out", str(tmp_path / "store")]
    with pytest.raises(SystemExit) as info:
        run_cli(fit_inrs.main, argv)
    message = str(info.value.code)
    assert message.startswith("error: mnist: no directory with train-images-idx3-ubyte*") and "\n" not in message
    assert message.endswith("(rerun with --debug for the traceback)")
    with pytest.raises(FileNotFoundError, match="mnist: no directory"):
        run_cli(fit_inrs.main, argv + ["--debug"])


def test_a_failed_run_leaves_no_run_or_store_directory(tmp_path, no_mnist):
    argv = [
        "--dataset",
        "mnist",
        "--train-objects",
        "4",
        "--val-objects",
        "2",
        "--test-objects",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "runs" / "mnist_dws"),
    ]
    with pytest.raises(FileNotFoundError):
        classify.main(argv)
    with pytest.raises(FileNotFoundError):
        fit_inrs.main(["--dataset", "mnist", "--out", str(tmp_path / "stores" / "mnist")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_failed_run_keeps_an_existing_run_directory(tmp_path, no_mnist):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(FileNotFoundError):
        classify.main(["--dataset", "mnist", "--cache-dir", str(tmp_path / "cache"), "--out", str(run)])
    assert run.is_dir()


@pytest.mark.parametrize("cli", [classify, fit_inrs, reproduce, ssl, views])
def test_help_shows_defaults_and_the_debug_flag(cli, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--debug" in text and "(default: " in text


def test_help_keeps_the_usage_examples_and_shows_numeric_defaults(capsys):
    with pytest.raises(SystemExit):
        fit_inrs.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--objects 1024 \\\n        --views 2" in text
    assert "--inr-steps INR_STEPS INR step cap" in " ".join(text.split()) and "--steps" not in text.split("options:")[1]
    with pytest.raises(SystemExit):
        classify.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS default: 10, or the paper's protocol" in text
    assert "--seed SEED training seed (INRs are fitted with seed 0) (default: 0)" in text


@pytest.mark.parametrize(
    "flag,value,message",
    [("--val-objects", "0", "--val-objects must be >= 1, got 0"), ("--augment", "flip", "unknown augmentation 'flip'")],
)
def test_bad_flags_are_one_line_errors_and_leave_no_run_directory(tmp_path, flag, value, message):
    argv = [
        "--dataset",
        "synthetic2d",
        "--train-objects",
        "4",
        "--val-objects",
        "2",
        "--test-objects",
        "2",
        "--inr-steps",
        "20",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    with pytest.raises(SystemExit) as info:
        run_cli(classify.main, argv + [flag, value])
    assert str(info.value.code).startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()


def test_the_cli_has_one_flag_per_config_field():
    """Every RunConfig field is a flag of experiments.classify with the field's default; flags parse to
    the typed config (``--no-progress`` is ``progress=False``, ``--amsgrad/--no-amsgrad`` a tri-state)."""
    import dataclasses

    parsed = vars(classify.parse_args([]))
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(parsed) - {"debug"} == (names - {"progress"}) | {"no_progress"}
    assert classify.config_of(classify.parse_args([])) == RunConfig()
    argv = [
        "--dataset",
        "fmnist",
        "--no-progress",
        "--no-amsgrad",
        "--inr-lr",
        "0.01",
        "--probe-points",
        "8",
        "--set-layer",
        "linear",
        "--template-sign-aware",
        "--out",
        "x",
    ]
    assert classify.config_of(classify.parse_args(argv)) == RunConfig(
        dataset="fmnist",
        progress=False,
        amsgrad=False,
        inr_lr=0.01,
        probe_points=8,
        set_layer="linear",
        template_sign_aware=True,
        out="x",
    )
    with pytest.raises(SystemExit):
        classify.parse_args(["--dataset", "imagenet"])


def test_the_function_probe_cli_has_the_common_flags_and_resolves_the_protocol_like_a_run():
    """function_probe's flags are FunctionProbeConfig's fields (classify's common ones, then --grid), and
    its config resolves epochs and INR recipe as a classification run's does."""
    from dwsjax.function_probe import FunctionProbeConfig
    from dwsjax.run import resolve_protocol
    from experiments import function_probe
    from experiments.cli import config_from_args

    args = function_probe.parse_args(["--dataset", "synthetic2d", "--no-progress", "--grid", "8"])
    config = resolve_protocol(config_from_args(FunctionProbeConfig, args))
    assert config == FunctionProbeConfig(epochs=DEFAULT_EPOCHS, inr_recipe=DEFAULT_RECIPE, progress=False, grid=8)
    assert resolve_protocol(classify.config_of(classify.parse_args(["--no-progress"]))).inr_recipe == DEFAULT_RECIPE


def test_the_ssl_cli_has_one_flag_per_config_field_and_shares_the_common_ones():
    """experiments.ssl's flags are SslConfig's fields: classify's common ones (same names and defaults), then
    its own; ``--label-fractions`` parses to a tuple, and config_argv writes a config back as flags."""
    import dataclasses

    from dwsjax.run import CommonConfig
    from dwsjax.ssl_run import SslConfig
    from experiments.cli import config_argv
    from experiments.reproduce_ssl import SSL_SETS

    parsed = vars(ssl.parse_args([]))
    names = {f.name for f in dataclasses.fields(SslConfig)}
    assert set(parsed) - {"debug"} == (names - {"progress"}) | {"no_progress"}
    common = {f.name for f in dataclasses.fields(CommonConfig)} - {"progress"}
    classify_parsed = vars(classify.parse_args([]))
    assert {k: parsed[k] for k in common} == {k: classify_parsed[k] for k in common}
    assert ssl.config_of(ssl.parse_args([])) == SslConfig()
    argv = ["--inr-steps", "5", "--epochs", "3", "--label-fractions", "0.05,0.2", "--no-progress", "--no-amsgrad"]
    given = ssl.config_of(ssl.parse_args(argv))
    assert given == SslConfig(inr_steps=5, epochs=3, label_fractions=(0.05, 0.2), progress=False, amsgrad=False)
    for config in (given, *SSL_SETS.values()):
        assert ssl.config_of(ssl.parse_args(config_argv(config))) == config
    run = RunConfig(dataset="fmnist", amsgrad=True, plot=True, probe_points=8, out="x")
    assert classify.config_of(classify.parse_args(config_argv(run))) == run
    with pytest.raises(SystemExit):
        ssl.parse_args(["--label-fractions", "a,b"])


def test_huge_page_environment_appends_the_tunable_once():
    from experiments.cli import HUGE_PAGE_TUNABLE, huge_page_environment

    assert huge_page_environment({"A": "1"}, "glibc") == {"A": "1", "GLIBC_TUNABLES": HUGE_PAGE_TUNABLE}
    kept = huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "glibc")
    assert kept["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGE_TUNABLE}"
    assert huge_page_environment(kept, "glibc") is None
    assert huge_page_environment({}, "") is None
    assert huge_page_environment({"DWSJAX_NO_HUGE_PAGES": "1"}, "glibc") is None


def test_a_command_restarts_itself_with_huge_pages_once():
    import os
    import platform
    import subprocess
    import sys

    from experiments.cli import HUGE_PAGES_NOTICE

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("the restart applies to Linux with glibc only")
    # sys.argv[0] is "-m" while ``python -m experiments.<name>`` imports the package
    script = (
        "import os, sys; sys.argv[0] = '-m'; import experiments; print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "DWSJAX_NO_HUGE_PAGES")}
    run = subprocess.run([sys.executable, "-c", script, "--x"], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["glibc.malloc.hugetlb=1", "['--x']"]
    notice = [line for line in run.stderr.splitlines() if "GLIBC_TUNABLES" in line]
    assert notice == [HUGE_PAGES_NOTICE]  # said once, by the process that restarts, not by the restarted one
    assert "DWSJAX_NO_HUGE_PAGES=1" in notice[0]
    env["DWSJAX_NO_HUGE_PAGES"] = "1"
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["None", "[]"]
    assert "GLIBC_TUNABLES" not in run.stderr
