"""The scheduler process (`ganforge scheduler`): one loop, holding a lease, that places queued
jobs on the pool's nodes and sends them.

`process` is the loop itself: lease, reconcile, plan, reserve, send. The rules it applies
(placement policy, nodes, reservations, preemption, the reconciler, wake-ups) are in
`shared.pool`, since the API and the workers apply some of them too.
"""
