"""Backends: one interface (:class:`~rps_infer.backends.base.Backend`), several runtimes.

A backend runs a model file that exists; it never builds or proves one (that is
:mod:`rps_infer.convert` and :mod:`rps_infer.runtime`). Backend modules import their
framework lazily, so importing this package is cheap.
"""
