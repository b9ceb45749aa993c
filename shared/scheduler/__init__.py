"""The scheduler: one loop, holding a lease, that places queued jobs on the pool's nodes.

- `policy`: the pure placement policy (queue + nodes + usage → placements and reasons);
- `nodes`: workers register their node and its devices, heartbeat, are drained or found dead;
- `reservations`: which job attempt holds which device (rows, so the database is the truth);
- `reconciler`: moves on jobs whose worker or node went silent;
- `loop`: the scheduler process (`ganforge scheduler`): lease, reconcile, plan, reserve, send.
"""
