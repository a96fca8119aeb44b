"""What operators watch: Prometheus metrics of sync runs (`metrics`) and structured logs (`logs`).

Nothing is imported here: the HTTP layer and the runner import `logs`, and `metrics` imports the sync
report, so an import here would make a cycle (and load prometheus_client where it is not needed).
"""
