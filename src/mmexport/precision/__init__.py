"""Precision variants of an FP32 ONNX: FP16 conversion, INT8 Q/DQ calibration, accuracy reports.

TensorRT 11 reads precision from the ONNX file only, so these files are what every engine is
built from; onnxruntime on the CPU runs and checks all of them.
"""
