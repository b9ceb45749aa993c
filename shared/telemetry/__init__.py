"""What the service says about itself while it runs: a job's live feed (state changes,
progress, log lines and artifacts as they happen, for Server-Sent Events), the Prometheus
metrics read from the database at scrape time, and structured (JSON) log records."""
