"""Sweep specs: a YAML file, a typed schema, expansion into tasks and their keys (DESIGN §4). No Ray here.

Modules: loader (YAML with line numbers and limits), checker (errors that name the key and its line), model (the
typed spec), parse (parse_spec, load_spec), grid (expansion into validated tasks, keyed by htmc.records.task_key),
redact (secrets out of logged text).

A spec looks like this (sweeps/demo.yaml is a complete one):

    name: demo                        # letters, digits, '.', '_', '-'; names the store partition and MLflow experiment
    results:                          # where records go
      uri: ./results                  # a local path, or s3://bucket/prefix
      endpoint_url: http://127.0.0.1:9000   # S3 only; default $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL
      region: us-east-1               # S3 only
      create_bucket: false            # S3 only: create the bucket if it is missing
      write_retry_s: 60               # S3 only: retry an unreachable store this long per request (backoff +
                                      # jitter); then the task is retried later, and finally reported failed
    tracking:
      uri: sqlite:///mlflow.db        # default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
      experiment: htmc-demo           # default htmc-<name>
      children: task                  # task (a child run per task) | group (one per task group) | off
      artifact_location: null         # for a new experiment only
    resources:                        # per kind; fractional allowed; default num_cpus 1, num_gpus 0
      resnet_train: {num_cpus: 1, num_gpus: 0.25}
    dispatch:
      max_attempts: 3                 # tries per task when its worker dies (a task that raises is not retried)
      batch_size: {resnet_train: 64}  # tasks per actor call; batched kinds train them as one computation
      max_actors: {circuit_ladder: 4} # cap on actors per kind (default: as many as the cluster fits)
      in_flight_per_actor: 2          # calls queued per actor; the driver never submits more
      actor_start_timeout_s: 300      # fail if no actor of a kind starts (e.g. no GPU node) within this time
    costs:                            # price table for cost accounting (issue 7); optional
      cpu_hour: 0.048                 # dollars per CPU-hour (records store cpu_seconds = num_cpus x wall time)
      gpu_hour: 2.50                  # dollars per GPU-hour (gpu_seconds = num_gpus x wall time)
    nightly:                          # `htmc nightly` (jobs/nightly.py, cluster/nightly.py); optional
      replicates: 4                   # ok keys re-run each night as fresh replicates (sample fixed by the date)
      concurrency: forbid             # forbid | replace | allow: when an earlier night's job is still running
      schedule: "02:00"               # UTC time of day the night is scheduled for
      starting_deadline_s: 21600      # a night that cannot start within this long after its schedule is skipped
      slower_factor: 3.0              # flag a task whose wall time grew by more than this factor ...
      slower_min_s: 1.0               # ... and by more than this many seconds (timing noise floor)
    groups:
      - kind: circuit_ladder
        name: ladders                 # optional; default <kind>-<index>
        params: {methods: [abc], steps: 3}          # fixed values: lists here are values, not alternatives
        grid:                                       # lists are alternatives; the Cartesian product is taken
          function: [sin, exp]
          eps0: [0.1, 0.05]
          function_params: {freq: [1, 2]}           # a mapping expands inside (nested product)
          methods: [[abc], [abc, table]]            # a list-valued parameter's alternatives: a list of lists

Expansion: every list in `grid` gives alternatives and every mapping is expanded recursively; a list of mappings
gives alternatives that are each expanded. `params` are merged in unchanged. Each resulting parameter set is
validated by its task kind (htmc.tasks), which fills the defaults; the canonical result is the task's params.
An axis over a parameter the kind declares separable (TaskKind.separable: an ε, a seed) is validated once per
value rather than once per task, and the tasks are kept as keys until read (grid.TaskList): 10^6 tasks plan in
seconds (issue 22 A).

Task key: sha256 of the canonical JSON of {kind, kind_version, params}, cut to 16 hex digits. Canonical JSON has
sorted keys, no spaces, and integral floats written as integers (eps0: 1 and eps0: 1.0 are the same work). So the
same spec always gives the same keys, and adding a grid value adds only new keys.

Everything is checked before anything runs: unknown keys (with their location and line), kinds, functions and
their parameters, methods, norms, numbers. A spec with an error raises SpecError (a ValueError) naming it.
"""
