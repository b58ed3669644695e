"""Start, find and stop what a stage runs on: processes, stages, Redis, Kestrel, databases, time."""
