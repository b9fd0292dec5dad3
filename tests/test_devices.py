import os
import subprocess
import sys

from dwsjax.devices import COLLECTIVE_TERMINATE_FLAG, use_all_cpu_cores


def test_collective_timeout_is_added_once_and_user_flags_are_kept(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    use_all_cpu_cores()
    flags = os.environ["XLA_FLAGS"].split()
    assert flags[0] == "--xla_force_host_platform_device_count=2"
    assert [f for f in flags if f.startswith(COLLECTIVE_TERMINATE_FLAG)] == [f"{COLLECTIVE_TERMINATE_FLAG}=3600"]
    use_all_cpu_cores()
    assert os.environ["XLA_FLAGS"].split() == flags


def test_a_user_collective_timeout_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"{COLLECTIVE_TERMINATE_FLAG}=5")
    use_all_cpu_cores()
    assert os.environ["XLA_FLAGS"] == f"{COLLECTIVE_TERMINATE_FLAG}=5"


def test_the_installed_xla_accepts_the_flags_and_gives_one_device_per_core():
    """XLA aborts on an unknown flag in XLA_FLAGS, so a too-old jaxlib would fail here."""
    code = ("from dwsjax.devices import use_all_cpu_cores; use_all_cpu_cores(); import jax, os; "
            "assert len(jax.devices()) == (os.cpu_count() or 1), jax.devices()")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
