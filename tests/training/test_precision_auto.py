"""``runtime.mixed_precision: auto``: float16 on GPUs, bfloat16 on CPUs with AMX, float32 on other CPUs."""

import keras
import pytest
import tensorflow as tf

from mr2ct.training import strategy
from mr2ct.training.strategy import cpu_info, resolve_precision, set_precision

SAPPHIRE_RAPIDS = ["fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"]
SKYLAKE_SERVER = ["fpu", "avx2", "avx512f", "avx512bw"]
ZEN4 = ["fpu", "avx2", "avx512f", "avx512_bf16"]
ZEN2 = ["fpu", "avx", "avx2"]
GPU = [tf.config.LogicalDevice("/device:GPU:0", "GPU")]

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile

"""

# (mode, visible GPUs, CPU flags, Keras policy)
CASES = [
    ("auto", GPU, SAPPHIRE_RAPIDS, "mixed_float16"),
    ("auto", GPU, ZEN2, "mixed_float16"),
    ("auto", [], SAPPHIRE_RAPIDS, "mixed_bfloat16"),
    ("auto", [], SKYLAKE_SERVER, "float32"),
    ("auto", [], ZEN4, "float32"),  # AVX512_BF16 without AMX: bfloat16 was slower than float32
    ("auto", [], ZEN2, "float32"),
    ("auto", [], [], "float32"),  # no /proc/cpuinfo
    ("off", GPU, SAPPHIRE_RAPIDS, "float32"),
    ("bfloat16", [], ZEN2, "mixed_bfloat16"),
    ("float16", [], ZEN2, "mixed_float16"),
]


@pytest.mark.parametrize("mode, gpus, flags, policy", CASES)
def test_auto_resolves_by_device_and_cpu_flags(mode, gpus, flags, policy):
    assert resolve_precision(mode, gpus=gpus, cpu_flags=flags) == policy


def test_auto_on_a_gpu_does_not_read_the_cpu_flags(monkeypatch):
    def unreadable(*args, **kwargs):
        raise AssertionError("the CPU flags were read")

    monkeypatch.setattr(strategy, "cpu_info", unreadable)
    assert resolve_precision("auto", gpus=GPU) == "mixed_float16"


@pytest.mark.parametrize("flags, policy", [(SAPPHIRE_RAPIDS, "mixed_bfloat16"), (ZEN2, "float32")])
def test_auto_reads_this_machines_flags_and_devices_by_default(monkeypatch, flags, policy):
    monkeypatch.setattr(strategy, "cpu_info", lambda: {"vendor": "", "model": "", "flags": flags})
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    try:
        assert set_precision("auto") == policy
        assert keras.mixed_precision.global_policy().name == policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_auto_sees_a_gpu_by_default(monkeypatch):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: GPU if kind == "GPU" else [])
    assert resolve_precision("auto") == "mixed_float16"


def test_cpu_info_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu_info(path)
    assert info["vendor"] == "GenuineIntel"
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["flags"] == sorted(["fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"])
    assert info["important_flags"] == ["avx512f", "avx512_bf16", "amx_bf16"]
    assert resolve_precision("auto", gpus=[], cpu_flags=info["flags"]) == "mixed_bfloat16"


def test_cpu_info_without_a_cpuinfo_file_is_empty(tmp_path):
    assert cpu_info(tmp_path / "absent") == {"vendor": "", "model": "", "flags": [], "important_flags": []}
