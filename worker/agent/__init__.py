"""The node agent: the worker's side of a job attempt's sandbox. It alone holds the service's
credentials; the attempt's processes ask it for their inputs and hand it their outputs over a
per-attempt channel (`server.py`, `operations.py`; the job's side is worker/channel/)."""
