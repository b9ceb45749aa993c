"""The worker: a Celery app whose one task claims a job, runs it in a supervised process group,
and reports the outcome. `worker.gan` holds the GAN engine itself (torch only).

Process layout of one job:
    celery worker (parent, never touches CUDA; holds the service's credentials)
      └─ task run_job: claim (compare-and-set), supervise            worker/tasks.py, supervisor.py
           ├─ the attempt's agent (threads of the task's process)    worker/agent/
           └─ python -m worker.launcher  (own session, the sandbox)   worker/launcher.py
                └─ k rank processes (spawn), torch.distributed       worker/rank.py -> worker/gan
The launcher and the ranks hold no credentials and import nothing that opens the database,
the broker or the store: they ask their agent for their inputs and hand it their outputs over
the attempt's channel (worker/channel/).
"""
