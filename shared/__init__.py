"""Code that both the API and the worker import.

config (the one reader of the environment), the database session and ORM models, job spec
schemas, the job state machine, the storage interface, the job domain layer, uploaded
datasets and the torch-free data-file checks they share with the worker, the message bus,
the scheduler (`shared/scheduler/`), and the client library and CLI. Nothing here imports torch.
"""
