"""The onnxruntime backend: CPU, CUDA (I/O binding) and TensorRT execution providers."""
