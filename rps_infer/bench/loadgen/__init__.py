"""Load over gRPC: the one closed-loop client (``closed_loop``), the sweep ``rps-infer bench
--target`` runs (``sweep``) and the mixed-traffic soak (``soak``)."""
