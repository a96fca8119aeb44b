"""`mapsync run`, the long-running worker, and its HTTP endpoint (`endpoint`: health, readiness, metrics,
triggers)."""
