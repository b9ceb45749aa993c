"""What more than one process imports (API, scheduler, workers, CLI). Nothing here imports torch.

- `config` (the one reader of the environment), `db` and `models` (the database), `migrate`;
- `states`: the one job state machine; `jobs`: the job domain, `requests` (what the API does
  for a user) and `reports` (what a worker writes about its attempt);
- `specs`: every job spec schema; `datafiles`: training-data files, checked without torch;
  `datasets`: uploaded datasets; `users`: users and tokens;
- `pool`: the pool's rules (placement policy, nodes, reservations, reconciler, wake-ups);
- `storage`: the one storage interface and its backends; `messaging`: the Celery app both
  sides share; `logs`: how every process writes its log records.

Each process's own code lives with it: `api/`, `scheduler/`, `worker/`, `cli/`.
"""
