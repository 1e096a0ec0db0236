"""Everything that runs on Ray: starting or joining it, the actor pool, the worker code, Ray job submission.

Modules: raysetup (init_ray with the security defaults), pool (the Dispatcher: actors per kind, bounded work in
flight, retries), units (the units of work and their counts), worker (TaskRunner, inside an actor: runs tasks and
writes their records), submission (Ray job submission: entrypoint, runtime env, submit, wait).
"""
