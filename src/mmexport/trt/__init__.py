"""TensorRT: engine builds for GPU servers and Jetsons, engine manifests, offline checks.

``tensorrt`` is never imported at import time of this package: every entry point imports it
lazily through :func:`mmexport.runtime.backends.tensorrt.api.import_tensorrt`, so everything here
also loads (and the offline parts run) on machines without TensorRT.
"""
