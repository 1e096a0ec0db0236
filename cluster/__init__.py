"""Everything distributed (DESIGN §3): the only package that knows Ray, MLflow and S3.

  spec/      sweep specs: parse, grid expansion, task keys (no Ray)
  store/     the Parquet result store: schema, local, S3, status index
  dispatch/  Ray: setup, the actor pool, the worker
  tracking/  MLflow: parent and child runs, reports
  service.py the sweep operations jobs/ calls (run, status, sync-mlflow, submit)
  analyze.py the one analyze path: load the records, build the report (analysis/), log it to MLflow
  nightly.py nightly sweeps
  provenance.py  git sha and package versions of a record
"""
