"""Export stages, file in / file out: torch -> ONNX, ONNX -> TensorRT, torch -> AOTInductor, model_dir and Triton repository writers."""
