"""What every result records about the machine: CPU, its inference flags, cores, load."""

from __future__ import annotations

import os
import sys

import pytest

from sdk.benchmarks import environment as env_mod
from sdk.benchmarks.environment import INFERENCE_FLAGS, LoadMonitor, cpu_label, environment


def test_environment_records_cpu_flags_cores_and_load():
    env = environment(load=LoadMonitor().finish())
    assert {"date_utc", "cpu_model", "cpu_id", "cpu_flags", "cpu_cores_logical", "cpu_cores_physical", "cpu_affinity",
            "load_average_1m", "load_average", "load", "libraries"} <= set(env)
    assert env["cpu_cores_logical"] == os.cpu_count() and env["cpu_model"]
    if sys.platform.startswith("linux"):
        assert set(env["cpu_flags"]) == set(INFERENCE_FLAGS)
        assert all(isinstance(v, bool) for v in env["cpu_flags"].values())
        assert 1 <= env["cpu_cores_physical"] <= env["cpu_cores_logical"]
        assert len(env["load_average"]) == 3
        assert env["cpu_model"] in cpu_label(env)
    assert {"before", "after", "max_1m", "samples", "logical_cores", "busy"} <= set(env["load"])
    assert "load" not in environment()


def test_load_monitor_keeps_the_maximum_and_flags_load_above_the_logical_cores(monkeypatch):
    loads = iter([(0.5, 0.4, 0.3), (9.0, 3.0, 1.0), (1.0, 2.0, 1.0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monitor = LoadMonitor()
    monitor.sample()
    record = monitor.finish()
    assert record == {"before": [0.5, 0.4, 0.3], "after": [1.0, 2.0, 1.0], "max_1m": 9.0, "samples": 3,
                      "logical_cores": 4, "busy": True}


def test_the_runs_own_threads_do_not_make_the_machine_busy(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for load, busy in ((2.01, False), (2.5, False), (2.51, True)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 1.0, 1.0))
        assert LoadMonitor().busy is busy


def test_flags_are_read_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(env_mod, "_cpuinfo_field", lambda name: {"flags": "fpu avx2 avx512f amx_int8"}.get(name))
    flags = env_mod.cpu_flags()
    assert flags["avx2"] and flags["amx_int8"] and not flags["avx512_bf16"]


@pytest.mark.parametrize("env, label", [
    ({"cpu_model": "AMD EPYC 7B13"}, "AMD EPYC 7B13"),
    ({"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_id": {"vendor": "GenuineIntel", "family": "6", "model": "167"}},
     "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 167)"),
])
def test_cpu_label(env, label):
    assert cpu_label(env) == label
