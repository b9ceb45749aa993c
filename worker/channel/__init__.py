"""The channel between a job's sandboxed processes and their node agent: the wire format
(`frames.py`), the job process's side (`link.py`) and what the agent hands a job at its start
(`ticket.py`). Standard library only, so a job process imports nothing that opens the
service's database, broker or store."""
