"""Tests for the thread policy (galaxy_distillation.runtime)."""

import pytest

from galaxy_distillation.runtime import ThreadPolicyError, choose_threads, configure_environment


def test_choose_threads_from_the_process_cores_never_from_the_load():
    # the count must not follow the load: it changes reduction order, hence the numbers
    assert choose_threads("auto", cores=2) == 2
    assert choose_threads(None, cores=8) == 8
    assert choose_threads("auto", cores=0) == 1
    assert choose_threads(3, cores=2) == 3  # an explicit count is taken as is
    for bad in (0, -1, "many", True):
        with pytest.raises(ThreadPolicyError, match="threads"):
            choose_threads(bad, cores=2)


def test_configure_environment_sets_defaults_and_keeps_user_choices():
    env: dict[str, str] = {"GD_THREADS": "3"}
    written = configure_environment(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "3"
    assert written == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "3"}
    user = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    assert configure_environment(user) == {} and user == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}
    off = {"GD_OMP_WAIT_POLICY": "none", "OMP_NUM_THREADS": "1"}
    assert configure_environment(off) == {} and "OMP_WAIT_POLICY" not in off
    with pytest.raises(ThreadPolicyError, match="GD_OMP_WAIT_POLICY"):
        configure_environment({"GD_OMP_WAIT_POLICY": "spin"})


def test_package_import_sets_the_policy_before_torch():
    import subprocess
    import sys

    code = "import os, galaxy_distillation, torch; print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["GD_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["PASSIVE", "1"]
