"""Alerting: Prometheus rule files, a vectorised rule evaluator and an Alertmanager-like notifier.

    rules = rules_for("online-shop")                 # or load_rules("my-rules.yaml")
    evaluator = RuleEvaluator(rules, store)          # store: the batch's MetricStore
    notifier = Notifier()                            # pages for severity=page, tickets for the rest
    each tick: evaluator.evaluate(now); notifier.update(now, evaluator)
    evaluator.alerts_json(world), evaluator.rules_json(world), notifier.pages(world), evaluator.firing() [B, A]
"""

from opsworld.observe.alerts.evaluator import Alert, Instance, RuleEvaluator
from opsworld.observe.alerts.notifier import (PAGER, TICKET, NotifiedAlert, Notification, Notifier, Route, Silence,
                                              default_route)
from opsworld.observe.alerts.rules import (AlertingRule, RuleError, RuleFile, RuleGroup, load_rules, parse_duration,
                                           rules_for, templates)

__all__ = [
    "PAGER", "TICKET", "Alert", "AlertingRule", "Instance", "NotifiedAlert", "Notification", "Notifier", "Route",
    "RuleError", "RuleEvaluator", "RuleFile", "RuleGroup", "Silence", "default_route", "load_rules",
    "parse_duration", "rules_for", "templates",
]
