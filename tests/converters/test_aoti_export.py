"""``sdk.converters.aoti_export``: what ``torch.export`` records, before any compilation.

Compiling and running a package is in ``tests/runtime/test_aoti_backend.py`` (one
compile for the whole suite: AOTInductor takes ~15 s even for a toy network).
"""

from __future__ import annotations

import pytest
import torch
from tiny_deploy import TinyDeploy, random_images

from sdk.converters.aoti_export import Autocast, custom_ops_in, export_aoti, export_program
from sdk.errors import BackendUnavailableError, ConfigError

HW = (32, 48)


def test_batch_dimension_stays_dynamic_from_one_to_max():
    program = export_program(TinyDeploy(), input_shape=HW, max_batch=6)
    (batch_range,) = program.range_constraints.values()
    assert (batch_range.lower, batch_range.upper) == (1, 6)
    module = program.module()
    for batch in (1, 5):  # neither is the example batch (2)
        images = random_images(batch, seed=batch)
        for got, want in zip(module(images), TinyDeploy()(images)):
            torch.testing.assert_close(got, want)


def test_max_batch_one_exports_a_static_batch():
    program = export_program(TinyDeploy(), input_shape=HW, max_batch=1)
    assert not program.range_constraints
    assert program.module()(random_images(1, seed=0))[0].shape == (1, 1)


def test_custom_ops_are_listed_for_the_manifest():
    assert custom_ops_in(export_program(TinyDeploy(), input_shape=HW, max_batch=2)) == ["sdk::batched_nms"]


def test_autocast_runs_the_body_in_low_precision_and_the_op_in_float32():
    # bfloat16 on CPU stands in for float16 on CUDA: the same autocast machinery
    mixed_module = Autocast(TinyDeploy(), device_type="cpu", dtype=torch.bfloat16)
    program = export_program(mixed_module, input_shape=HW, max_batch=4).run_decompositions()
    nodes = list(program.graph_module.graph.nodes)
    convs = [n for n in nodes if n.target == torch.ops.aten.convolution.default]
    (nms,) = [n for n in nodes if n.target == torch.ops.sdk.batched_nms.default]
    assert convs and all(n.meta["val"].dtype == torch.bfloat16 for n in convs)
    assert [a.meta["val"].dtype for a in nms.args[:2]] == [torch.float32, torch.float32]
    eager = TinyDeploy()(random_images(3, seed=1))
    mixed = program.module()(random_images(3, seed=1))
    assert [t.dtype for t in mixed] == [t.dtype for t in eager]


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ConfigError, match="--device cuda"):
        export_aoti(TinyDeploy(), tmp_path / "m.pt2", input_shape=HW, max_batch=2, fp16=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_export_without_gpu_says_so(tmp_path):
    with pytest.raises(BackendUnavailableError, match="CUDA GPU"):
        export_aoti(TinyDeploy(), tmp_path / "m.pt2", input_shape=HW, max_batch=2, device="cuda")


@pytest.mark.parametrize("shape", [(None, 3, -1, -1), (32,), (0, 48)])
def test_dynamic_or_bad_input_shape_is_rejected(tmp_path, shape):
    with pytest.raises((ConfigError, TypeError)):
        export_aoti(TinyDeploy(), tmp_path / "m.pt2", input_shape=shape, max_batch=2)
