"""The MLOps engine: registry, training, evaluation, serving and deployment.

Usable as a plain library: nothing here imports ``tools``, ``policies`` or ``agents``.
"""
