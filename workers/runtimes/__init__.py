"""Model runtimes: one module per engine behind the `ModelRuntime` protocol (base.py), which one
serves a call (selection.py), and the per-process cache of loaded models (cache.py)."""
