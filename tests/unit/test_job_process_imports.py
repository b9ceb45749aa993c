"""A job's processes import nothing of the service that opens its database, broker or store:
whatever they run (soon a researcher's code) finds no client, no settings object and no
credentials among their modules, only the channel to their agent."""

from __future__ import annotations

import json
import subprocess
import sys

# What the launcher, a rank (training, evaluation, sampling, inversion) and the warm sampler
# import, between them.
JOB_PROCESS_MODULES = [
    "worker.launcher",
    "worker.rank",
    "worker.sampling",
    "worker.inverting",
    "worker.warm.process",
    "worker.script_jobs",
    "worker.runtime",
]
# The service's own ways to its database, broker and store, and the domain layer over them.
FORBIDDEN = [
    "sqlalchemy",
    "redis",
    "celery",
    "kombu",
    "psycopg",
    "psycopg2",
    "shared.config",
    "shared.db",
    "shared.storage",
    "shared.jobs",
    "shared.models",
    "shared.pool",
    "shared.users",
    "shared.datasets",
    "worker.agent",
    "worker.artifacts",
    "worker.artifact_batch",
    "worker.node",
    "worker.supervisor",
    "worker.tasks",
]


def test_job_processes_import_no_client_of_the_services_database_broker_or_store() -> None:
    script = (
        "import json, sys\n"
        f"for name in {JOB_PROCESS_MODULES!r}: __import__(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
    )
    found = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert found == []
    assert "worker.channel.link" in loaded  # the one door they do have
