"""Sensors: the truth state turned into the telemetry an on-call engineer sees (metrics and PromQL, logs, traces,
alerts, change events), late, sampled and imperfect the way real telemetry is. Nothing here reads a fault."""
