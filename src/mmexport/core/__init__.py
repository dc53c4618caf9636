"""The shared contract every layer builds on: the spec, manifests, errors, atomic files, bounded JSON,
user references and the one ONNX reader. Imports numpy only."""
