"""rps_infer: convert models to ONNX, prove parity, serve and benchmark them.

Importing the package is cheap: torch and tensorflow are imported only by the
modules that need them, when they are first used.
"""

from rps_infer.version import VERSION

__version__ = VERSION
