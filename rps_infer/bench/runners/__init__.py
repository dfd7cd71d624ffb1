"""Runners: where a case is timed. ``inprocess`` (this process), ``ab`` (worker processes of a
base and a head tree, interleaved), ``worker`` (the worker process itself), ``revisions``
(git revisions as trees)."""
