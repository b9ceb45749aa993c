"""The node's fork server: one process per worker that has imported torch and the engine once,
and forks each attempt's launcher from that state, so a job reaches its first step in about
a second where a cold launcher (and then each spawned rank) spends seconds importing torch.

- `server`: the fork server itself (`python -m worker.forkserver.server`), sandboxed as a job
  process is, holding no credentials and running no job code of its own;
- `protocol`: the messages between it and a supervisor (one connection per attempt);
- `client`: the supervisor's side, a handle that stands in for a `subprocess.Popen`;
- `keeper`: the worker main process's side, which starts it and starts it again when it dies.

A forked launcher is as isolated as a cold one: its own session (the supervisor's kill of its
group reaches its ranks), the attempt's environment in place of the server's, its descriptors
closed, and the attempt's sandbox plan applied on top of the server's (a narrower Landlock
layer, lower limits). Its ranks are forked from it before any of them computes, so the one
import of torch serves all of them. What a job imports (a researcher's model plugin) is
imported after the fork, in the job's own processes: the server never runs it.
"""
