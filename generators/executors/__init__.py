"""Executors: where a stage's items run. `local` is generators.core.runner (this process); `ray` runs
model replicas as Ray actors (ray_executor.py, replica.py), joined or started by ray_cluster.py,
with the stage shipped to them by shipping.py. Both settle outcomes through runner.Settler, so
the run folder is written the same way by one process, the driver."""
