"""MLflow tracking of sweeps (DESIGN §4); the only package that imports mlflow.

Modules: tracker (the Tracker of one execution: parent run, child runs, progress), runs (a task's child run, the
tasks already tracked), entities (MLflow's request limits, flattened params, a record's metrics), report (a
sweep's report as artifacts of its parent run).
"""
