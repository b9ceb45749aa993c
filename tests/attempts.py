"""A job attempt's agent and the link a rank would hold, in the test's own process: what a
unit test needs to run worker code that talks to its agent (the reporter, sampling), through
the real channel, with the test process admitted as the attempt's session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.storage import Storage
from worker.agent.server import AttemptAgent, AttemptFolders
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.reporter import JobReporter


@dataclass
class Attempt:
    agent: AttemptAgent
    link: AgentLink
    ticket: JobTicket

    def reporter(self, rank: int = 0) -> JobReporter:
        return JobReporter(self.link, self.ticket, rank)


@contextmanager
def attempt_of(
    settings: Settings, store: Storage, job_id: str, attempt: int, folder: Path
) -> Iterator[Attempt]:
    folders = AttemptFolders(folder / f"attempt-{attempt}")
    folders.create()
    with AttemptAgent(settings, store, job_id, attempt, folders) as agent:
        agent.admit(os.getsid(0))
        link = AgentLink(str(agent.socket_path))
        try:
            ticket = JobTicket.from_json(link.call("ticket")[0]["ticket"])
            yield Attempt(agent, link, ticket)
        finally:
            link.close_quietly()
