"""The HTTP API (Flask): app factory, auth, problem+json errors, and one blueprint per resource.

Views are thin: they parse, call one function of the job domain (`shared.jobs.requests`),
and serialise. The API never imports torch. `dashboard.py` serves the web pages under /ui/
(templates/ui/, static/ui/), which call this same JSON API from the browser with the user's
token; `live_feed` reads a job's feed for event streams, `db_metrics` the Prometheus metrics
read from the database at scrape time, `counters` what an API process counts itself.
"""
