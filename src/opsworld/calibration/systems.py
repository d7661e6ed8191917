"""The real systems the Nezha recordings come from, and the built-in template that stands for each in the simulator.

One row per system: how its pods are recognised, which fault-list field times an injection, which file names each
fault's root-cause signature, and how its services map onto the template's components. A new system (or a new
template for one) is a new row here; `nezha.calibrate` reads everything else from the recordings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# Online Boutique's services, named as the template's components (today's mapping: the same names)
BOUTIQUE_SERVICES = ("frontend", "adservice", "cartservice", "checkoutservice", "currencyservice", "emailservice",
                     "paymentservice", "productcatalogservice", "recommendationservice", "shippingservice")


@dataclass(frozen=True)
class System:
    """A real deployment recorded in the Nezha layout, and what the calibration needs to know about it."""

    key: str                   # as in the JSON report
    name: str                  # as in the tables
    template: str              # the built-in template that stands for it
    clock: str                 # the fault-list field that times an injection: inject_timestamp or inject_time
    root_causes: str           # beside the fault list: per service and fault type, the signal that locates it
    statistic: str             # how a window's one-minute samples are summed up: mean or median
    prefix: str = ""           # a pod belongs to it when its service starts with this ...
    components: Mapping[str, str] = field(default_factory=dict)   # ... or is a key here: service -> component
    # (real service, Nezha type) -> the template's handler the injected bug was in, where the root-cause file's
    # code location names one; a code-level fault elsewhere strikes every request of its service
    handlers: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def owns(self, service: str) -> bool:
        """Whether a service (a pod name less its hash suffixes) is one of this system's."""
        return service in self.components or bool(self.prefix) and service.startswith(self.prefix)

    def component(self, service: str) -> str:
        """The template component that stands for a real service."""
        return self.components.get(service, service)


SYSTEMS: tuple[System, ...] = (
    # inject_timestamp: it and inject_time (read as UTC) disagree once, by a minute, and the target's CPU sides
    # with the time stamp (recommendationservice's cpu_consumed at 07:09:43, listed at 07:10:43). Means of the
    # windows' samples, as the data README's medians are made.
    System("online-boutique", "Online Boutique", "online-shop", "inject_timestamp", "root_cause_hipster.json", "mean",
           components={s: s for s in BOUTIQUE_SERVICES},
           # root_cause_hipster.json's frontend locations: "Serving product page started_GetProduct start" (return)
           # and "Placing order started_Order placed complete" (exception), the product page's and checkout's
           # handlers; the backends' named methods are their only handler in the template
           handlers={("frontend", "return"): "GET /product/{id}", ("frontend", "exception"): "POST /cart/checkout"}),
    # inject_time read as UTC: the metrics' TimeStamp is their Time read as UTC, while inject_timestamp is, for the
    # morning's faults, inject_time read as UTC+8 and drifts by up to 90 s. Medians of the windows' samples: its
    # pods' client P90 has stray 12-20 s samples. The template's components are named as the pods' deployments.
    System("train-ticket", "Train Ticket", "train-ticket", "inject_time", "root_cause_ts.json", "median",
           prefix="ts-"),
)
