"""Model metadata and Triton ``ModelConfig`` protos describing a served model.

KServe's ``ModelMetadataResponse`` has no free-form fields, so the class list and
the preprocessing record travel in the config's ``parameters`` (string values,
JSON encoded): ``classes``, ``preprocess``, plus ``input_formats``, ``box_format``
and the model_dir facts in ``ServedModel.info``. ``contract_outputs`` is shared
with the Triton model-repository writer (``sdk.converters.triton_repo``).
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from tritonclient.grpc import model_config_pb2, service_pb2

from sdk.serving.model import ServedModel
from sdk.serving.protocol import INPUT_NAME, MASKS_OUTPUT, OUTPUTS

_CONFIG_TYPES = {"INT32": model_config_pb2.TYPE_INT32, "FP32": model_config_pb2.TYPE_FP32,
                 "BYTES": model_config_pb2.TYPE_STRING}
INPUT_FORMATS = "BYTES [N, 1] encoded images (JPEG, PNG, ...), or UINT8 [N, H, W, 3] RGB pixels"
BOX_FORMAT = "xyxy, original image pixels"


def contract_outputs(max_det: int, *, masks: bool = False) -> list[model_config_pb2.ModelOutput]:
    """The four detection outputs (and ``masks`` BYTES [K] for an instance segmentation
    model), per-image dims (no batch dimension), K = ``max_det``."""
    return [
        model_config_pb2.ModelOutput(
            name=name, data_type=_CONFIG_TYPES[datatype], dims=[max_det if d == -1 else d for d in dims]
        )
        for name, datatype, _, dims in (*OUTPUTS, *([MASKS_OUTPUT] if masks else []))
    ]


def dynamic_batching(
    *, preferred_batch_sizes: Sequence[int], max_queue_delay_us: int, max_queue_size: int
) -> model_config_pb2.ModelDynamicBatching:
    batching = model_config_pb2.ModelDynamicBatching(
        preferred_batch_size=list(preferred_batch_sizes), max_queue_delay_microseconds=max_queue_delay_us
    )
    if max_queue_size:
        batching.default_queue_policy.max_queue_size = max_queue_size
    return batching


def string_parameters(config: model_config_pb2.ModelConfig, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = value


def descriptive_parameters(model_classes: Sequence[str], preprocess_json: str, info: Mapping[str, str]) -> dict[str, str]:
    """The config parameters that let a client interpret the outputs."""
    return {"classes": json.dumps(list(model_classes)), "preprocess": preprocess_json, **info}


def served_model_config(model: ServedModel, batching) -> model_config_pb2.ModelConfig:
    """Config of a model as this server serves it (``batching``: a ``BatchingConfig``)."""
    config = model_config_pb2.ModelConfig(
        name=model.name,
        platform=model.platform,
        max_batch_size=batching.max_batch_size,
        input=[model_config_pb2.ModelInput(name=INPUT_NAME, data_type=model_config_pb2.TYPE_STRING, dims=[1])],
        output=contract_outputs(model.max_det, masks=model.masks),
        dynamic_batching=dynamic_batching(
            preferred_batch_sizes=batching.preferred_batch_sizes,
            max_queue_delay_us=batching.max_queue_delay_us,
            max_queue_size=batching.max_queue_size,
        ),
        instance_group=[model_config_pb2.ModelInstanceGroup(count=batching.instances, kind=_instance_kind(model))],
    )
    params = descriptive_parameters(model.classes, model.preprocess.to_json(), model.info)
    string_parameters(config, {**params, "input_formats": INPUT_FORMATS, "box_format": BOX_FORMAT})
    return config


def _instance_kind(model: ServedModel) -> int:
    gpu = str(model.info.get("device", "cpu")).startswith("cuda")
    return model_config_pb2.ModelInstanceGroup.KIND_GPU if gpu else model_config_pb2.ModelInstanceGroup.KIND_CPU


def served_model_metadata(model: ServedModel) -> service_pb2.ModelMetadataResponse:
    """KServe metadata: the BYTES image input and the outputs with a dynamic batch dimension."""
    tensor = service_pb2.ModelMetadataResponse.TensorMetadata
    return service_pb2.ModelMetadataResponse(
        name=model.name,
        versions=[model.version],
        platform=model.platform,
        inputs=[tensor(name=INPUT_NAME, datatype="BYTES", shape=[-1, 1])],
        outputs=[
            tensor(name=name, datatype=datatype, shape=[-1, *(model.max_det if d == -1 else d for d in dims)])
            for name, datatype, _, dims in (*OUTPUTS, *([MASKS_OUTPUT] if model.masks else []))
        ],
    )
