"""The latency gate: same-run A/B timing of two source trees and the verdicts on it.

``plugin`` (the pytest plugin, ``--gate``), ``ab`` (the controller), ``worker`` (the
timed cases, run in each tree), ``revisions`` (git revisions as source trees),
``stats`` and ``verdicts`` (intervals and decisions), ``schemas`` (settings and
baselines), ``baseline`` (``make baseline``), ``abbench`` (``rps-infer bench --ab``).
"""
