"""Validating uploads: the worker's side (validate), the sandbox that reads each file, and what
runs inside it (inspection: load, audit, introspect, ONNX upload checks, compile, equivalence).

Kept free of imports: the sandbox process starts from `workers.validation.sandbox_child`."""
