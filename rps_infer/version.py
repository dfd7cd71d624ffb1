"""The package version (one place; the root re-exports it as ``rps_infer.__version__``)."""

VERSION = "0.1.0"
