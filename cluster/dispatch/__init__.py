"""Everything that runs on Ray: starting or joining it, the actor pool, the worker code, Ray job submission.

Modules: raysetup (init_ray with the security defaults), pool (the Dispatcher: actors per kind, bounded work in
flight, retries), worker (TaskRunner, inside an actor: runs tasks and writes their records).
"""
