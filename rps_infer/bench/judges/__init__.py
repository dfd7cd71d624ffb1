"""Judges: what a run's numbers mean. ``stats`` (paired ratios and intervals), ``verdicts``
(the rules), ``baselines`` (stored numbers), ``gate`` (one run's verdicts). No timing, no
transport, no tables."""
