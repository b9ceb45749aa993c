"""Sweeps: one job that runs a training spec over a grid of fields and random draws.

- `expansion`: the children's specs from a sweep spec, each checked as a training spec;
- `submission`: the sweep row and its children's rows, in the caller's transaction;
- `halving`: which children a successive-halving rung stops (pure);
- `progress`: the scheduler's pass over running sweeps (their state, their rungs);
- `children`: a sweep's children as its job JSON summarises them.
"""
