"""The native TensorRT backend: ``.engine`` / ``.plan`` files through TensorRT and cuda-python."""
