"""The pool's rules: what the scheduler process, the API and the workers all apply to nodes,
devices and the queue. The loop that applies them in turn is the scheduler process
(`scheduler/process.py`).

- `policy`: the pure placement policy (queue + nodes + usage → placements and reasons);
- `nodes`: workers register their node and its devices, heartbeat, are drained or found dead;
- `reservations`: which job attempt holds which device (rows, so the database is the truth);
- `preemption`: a running job asked to checkpoint and give its devices back;
- `reconciler`: moves on jobs whose worker or node went silent;
- `wakeup`: tells the scheduler to run a pass now; `overview`: the pool and queue as anyone
  may see them, and the admission and quota checks made at submission.
"""
