"""The worker: a Celery app whose one task claims a job, runs it in a supervised process group,
and reports the outcome. `worker.gan` holds the GAN engine itself (torch only).

Process layout of one job:
    celery worker (parent, never touches CUDA)
      └─ task run_job: claim (compare-and-set), supervise            worker/tasks.py, supervisor.py
           └─ python -m worker.launcher  (own process group)          worker/launcher.py
                └─ k rank processes (spawn), torch.distributed       worker/rank.py -> worker/gan
"""
