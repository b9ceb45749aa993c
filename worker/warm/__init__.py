"""The warm sampler: one long-lived process per device that runs sampling jobs without
starting a process, importing torch or downloading a checkpoint each time.

- `samplers.py`: the worker's main process starts one per device and restarts it if it dies.
- `process.py`: the sampler itself (`python -m worker.warm.process`): torch imported once,
  threads capped, a bounded cache of loaded checkpoints, jobs taken one at a time from a local
  socket and run through `worker.sampling.run_sampling`, the cold path's own code.
- `client.py`: the Celery task's side: hand the claimed job over and watch it as the supervisor
  watches a launcher (heartbeats, cancel, fencing); None when no sampler answers (cold path).
- `protocol.py`: the socket's address and its JSON-line messages.
- `cache.py`: the bounded cache, least recently used out first.
"""
