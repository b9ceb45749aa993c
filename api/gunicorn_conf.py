"""gunicorn's settings for the API (`gunicorn --config python:api.gunicorn_conf`); the
command line in cli/embedded.py gives the address and the process and thread counts.

- **gthread workers.** A Server-Sent Events stream (api/live.py) holds one thread, not a
  whole worker, and the worker's heartbeat runs in its main loop, so a stream that lasts
  minutes never trips gunicorn's `--timeout`; streams end by themselves after
  api.live.STREAM_MAX_S, and clients reconnect.
- **Metrics across processes.** Unless the operator names a PROMETHEUS_MULTIPROC_DIR, the
  master makes a fresh one before it forks the workers (so counts start at zero with each
  start) and removes it when it exits: a scrape of /metrics on any worker sums the request
  latencies and storage errors of all of them.
- **Nothing left behind.** Each process keeps its scratch (the master its metrics folder, a
  worker the uploads it checks) under `$GANFORGE_HOME/run/api/<pid>/` (shared/runfolders.py):
  the master removes a dead worker's folder when it reaps it, its own when it exits, and at
  its start what a killed predecessor left (folders of pids no longer running).
- **No control socket.** gunicorn >= 25.1 listens on `$XDG_RUNTIME_DIR/gunicorn.ctl` or
  `~/.gunicorn/gunicorn.ctl` for `gunicornc`, one path for every gunicorn of the user on the
  host: a second API would take it over from the first (and remove it when it stops). The
  API needs no runtime control (a rollout restarts it), so it has none.
- **Its own refusals as problems.** A request line or headers past gunicorn's limits, or a
  header it cannot parse, are refused before the app runs; api/front_errors.py makes those
  answers problem+json like the app's.
- **JSON logs** (GANFORGE_LOG_FORMAT=json): gunicorn's own error and access loggers write
  one JSON object per line too, as the app's records do.
"""

from __future__ import annotations

import os
from typing import Any

from api import front_errors
from shared.config import Settings
from shared.runfolders import API_SERVICE, own_folder, remove_leftovers, remove_own

worker_class = "gthread"
front_errors.install()  # gunicorn's own 400/414/431 answers as problem+json
# gunicorn's control socket (25.1+; older releases ignore the name): off, see above.
control_socket_disable = True

_settings = Settings.from_env()

if _settings.log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
        "root": {"level": "INFO", "handlers": []},
    }


def on_starting(server: Any) -> None:
    remove_leftovers(_settings, API_SERVICE)
    if _settings.prometheus_multiproc_dir is None:
        folder = own_folder(_settings, API_SERVICE) / "metrics"
        folder.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        server.ganforge_metrics_dir = str(folder)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    folder = getattr(server, "ganforge_metrics_dir", None) or _settings.prometheus_multiproc_dir
    if folder:
        multiprocess.mark_process_dead(worker.pid, folder)
    remove_own(_settings, API_SERVICE, worker.pid)  # what it was checking when it died


def on_exit(server: Any) -> None:
    remove_own(_settings, API_SERVICE)  # the metrics folder with it
