"""scripts/build_horovod.sh: the C++17 patch, the wheel cache, and the built Horovod itself."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "build_horovod.sh"

TOP_CMAKE = """cmake_minimum_required(VERSION 3.13 FATAL_ERROR)
project(horovod CXX)

set(CMAKE_CXX_STANDARD 14)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
if(CMAKE_CUDA_COMPILER)
            set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -std=c++11")
endif()
"""
TORCH_CMAKE = """if(NOT Pytorch_VERSION VERSION_LESS "1.5.0")
    set(CMAKE_CXX_STANDARD 14)
endif()
"""
CUDA_CMAKE = """set(CMAKE_CUDA_STANDARD 11)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
"""


def fake_sdist(root: pathlib.Path) -> pathlib.Path:
    (root / "horovod" / "torch").mkdir(parents=True)
    (root / "horovod" / "common" / "ops" / "cuda").mkdir(parents=True)
    (root / "CMakeLists.txt").write_text(TOP_CMAKE)
    (root / "horovod" / "torch" / "CMakeLists.txt").write_text(TORCH_CMAKE)
    (root / "horovod" / "common" / "ops" / "cuda" / "CMakeLists.txt").write_text(CUDA_CMAKE)
    return root


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_patch_raises_every_cxx_standard_to_17_and_is_idempotent(tmp_path) -> None:
    tree = fake_sdist(tmp_path / "horovod-0.28.1")
    assert run_script("patch", str(tree)).returncode == 0
    expected = {
        "CMakeLists.txt": TOP_CMAKE.replace("STANDARD 14", "STANDARD 17").replace("c++11", "c++17"),
        "horovod/torch/CMakeLists.txt": TORCH_CMAKE.replace("STANDARD 14", "STANDARD 17"),
        "horovod/common/ops/cuda/CMakeLists.txt": CUDA_CMAKE.replace("STANDARD 11", "STANDARD 17"),
    }
    for name, text in expected.items():
        assert (tree / name).read_text() == text
    second = run_script("patch", str(tree))
    assert second.returncode == 0, second.stderr
    for name, text in expected.items():
        assert (tree / name).read_text() == text


def test_patch_refuses_an_unexpected_layout(tmp_path) -> None:
    tree = fake_sdist(tmp_path / "horovod")
    (tree / "horovod" / "torch" / "CMakeLists.txt").write_text("set(CMAKE_CXX_STANDARD 20)\n")
    done = run_script("patch", str(tree))
    assert done.returncode != 0
    assert "expected 'set(CMAKE_CXX_STANDARD 14)'" in done.stderr
    assert run_script("patch", str(tmp_path / "missing")).returncode != 0


def test_help_and_unknown_arguments() -> None:
    shown = run_script("--help")
    assert shown.returncode == 0 and "--gpu" in shown.stdout and "ORCH_CACHE" in shown.stdout
    wrong = run_script("--bogus")
    assert wrong.returncode != 0 and "unknown argument: --bogus" in wrong.stderr


STUB_PYTHON = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$*" in
    *torch.__version__*) echo 2.13.0+cpu ;;
    *version_info*) echo py3.11 ;;
    *sysconfig*) dirname "$0" ;;
esac
exit 0
"""


def test_a_cached_wheel_is_installed_without_building(tmp_path) -> None:
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir()
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "ORCH_CACHE": str(tmp_path / "cache"), "STUB_LOG": str(log)}
    key = run_script("cache-key", "--python", str(stub), env=env)
    assert key.stdout.strip() == f"{tmp_path}/cache/wheels/horovod-0.28.1_torch-2.13.0+cpu_py3.11_cpu"
    gpu_key = run_script("cache-key", "--gpu", "--cuda-cc-list", "80,90", "--python", str(stub), env=env)
    assert gpu_key.stdout.strip().endswith("_py3.11_gpu-cc80-90")
    assert "must look like" in run_script("cache-key", "--gpu", "--cuda-cc-list", "sm90", env=env).stderr
    wheel = pathlib.Path(key.stdout.strip()) / "horovod-0.28.1-cp311-cp311-linux_x86_64.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not really a wheel")
    done = run_script("--python", str(stub), env=env)
    assert done.returncode == 0, done.stderr
    assert "reusing cached wheel" in done.stderr
    calls = log.read_text()
    assert f"-m pip install --quiet --no-deps --force-reinstall {wheel}" in calls
    assert "download" not in calls and "wheel --no-deps" not in calls


@pytest.mark.horovod
def test_horovod_allreduce_over_gloo_with_two_ranks() -> None:
    code = ("import torch, horovod.torch as hvd; hvd.init(); "
            "s = hvd.allreduce(torch.tensor([hvd.rank() + 1.0]), op=hvd.Sum); "
            "print('sum', hvd.rank(), hvd.size(), int(s.item()))")
    horovodrun = pathlib.Path(sys.executable).parent / "horovodrun"
    done = subprocess.run([str(horovodrun), "-np", "2", "-H", "localhost:2", "--gloo",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sum 0 2 3" in done.stdout and "sum 1 2 3" in done.stdout
