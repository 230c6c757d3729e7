"""`sdk triton-repo MODEL_DIR OUT_DIR`: write a Triton Inference Server model repository.

The repository model is the bare network: Triton receives preprocessed tensors
(`sdk.preprocess.preprocess_batch` on the client) and returns boxes in
network-input pixels, whereas `sdk serve` decodes and preprocesses images on
the server and returns boxes in original pixels. See `sdk.converters.triton_repo`.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "triton-repo",
        help="write a Triton Inference Server model repository from a model_dir",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="model_dir written by `sdk export` (onnxruntime or tensorrt)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the repository folder (created; other models in it are kept)")
    p.add_argument("--model-name", help="model name in the repository (default: the model_dir folder name)")
    p.add_argument("--max-batch-size", type=int, help="Triton max_batch_size (default: the model_dir's max batch)")
    p.add_argument(
        "--max-queue-delay-us", type=int, default=0, help="dynamic_batching max_queue_delay_microseconds (default 0)"
    )
    p.add_argument(
        "--preferred-batch-size", type=int, nargs="+", default=[], metavar="N", help="dynamic_batching preferred_batch_size"
    )
    p.add_argument("--max-queue-size", type=int, default=0, help="default_queue_policy.max_queue_size (0 = unbounded)")
    p.add_argument("--instances", type=int, default=1, help="instance_group count (default 1)")
    p.add_argument(
        "--kind", choices=("auto", "cpu", "gpu"), default="auto",
        help="instance kind (default auto: GPU for TensorRT engines, else CPU)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sdk.converters.triton_repo import write_triton_repository

    target = write_triton_repository(
        args.model_dir,
        args.out_dir,
        model_name=args.model_name,
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        preferred_batch_sizes=args.preferred_batch_size,
        max_queue_size=args.max_queue_size,
        instances=args.instances,
        kind=args.kind,
    )
    print(f"wrote {target} (config.pbtxt, 1/, README.md)")
    print(
        "note: Triton serves the bare network: send preprocessed tensors (sdk.preprocess.preprocess_batch) and map "
        "boxes back with sdk.postprocess.decode_outputs; `sdk serve` does both server side."
    )
    print(f"run: tritonserver --model-repository {args.out_dir}")
    return 0
