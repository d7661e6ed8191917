"""Names a generated system's parts get: what its engineers might have called them, never what drew them."""

from __future__ import annotations

import numpy as np

_NOUNS = ("account", "ad", "alert", "analytics", "audit", "auth", "basket", "billing", "booking", "cart", "catalog",
          "checkout", "comment", "config", "content", "coupon", "currency", "customer", "delivery", "discount",
          "document", "email", "event", "export", "feed", "file", "fraud", "geo", "gift", "history", "identity",
          "image", "import", "inventory", "invoice", "label", "ledger", "listing", "loyalty", "media", "member",
          "message", "metadata", "notification", "offer", "order", "payment", "payout", "permission", "photo",
          "pricing", "product", "profile", "promo", "quote", "rating", "receipt", "recommendation", "refund",
          "report", "reservation", "review", "risk", "route", "schedule", "search", "session", "settings",
          "shipment", "shipping", "sku", "social", "stock", "storage", "subscription", "tag", "tax", "ticket",
          "timeline", "token", "tracking", "transfer", "translation", "user", "video", "wallet", "warehouse",
          "wishlist")
_QUALIFIERS = ("", "", "", "core", "read", "write", "edge", "batch", "lookup", "sync", "index", "query", "legacy")
_SUFFIX = {"service": ("service", "api", "svc", "server", "backend"), "worker": ("worker", "consumer", "processor"),
           "cache": ("cache", "redis", "memcached"), "datastore": ("db", "postgres", "mysql", "mongodb"),
           "queue": ("queue", "events", "topic")}
_ENTRIES = ("frontend", "api-gateway", "web", "edge-proxy", "mobile-bff", "graphql-gateway", "storefront", "portal")
_VERBS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-central1", "europe-west4")


class Namer:
    """Unique component, endpoint, zone and version names drawn from a seeded generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def _pick(self, options) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def _unique(self, name: str) -> str:
        base, i = name, 2
        while name in self.taken:
            name, i = f"{base}-{i}", i + 1
        self.taken.add(name)
        return name

    def component(self, kind: str) -> str:
        qualifier = self._pick(_QUALIFIERS)
        parts = [self._pick(_NOUNS), qualifier, self._pick(_SUFFIX[kind])]
        return self._unique("-".join(p for p in parts if p))

    def entry(self) -> str:
        return self._unique(self._pick(_ENTRIES))

    def endpoint(self) -> str:
        noun = self._pick(_NOUNS)
        path = f"/{noun}s" + ("/{id}" if self.rng.random() < 0.5 else "")
        if self.rng.random() < 0.3:
            path += "/" + self._pick(_NOUNS) + "s"
        return self._unique(f"{self._pick(_VERBS)} {path}")

    def zones(self, n: int) -> list[str]:
        region = self._pick(_REGIONS)
        return [f"{region}{'abc'[i]}" for i in range(n)]

    def version(self) -> str:
        return f"v{int(self.rng.integers(0, 4))}.{int(self.rng.integers(0, 30))}.{int(self.rng.integers(0, 10))}"

    def config(self) -> str:
        return f"cfg-2025-{int(self.rng.integers(1, 13)):02d}-{int(self.rng.integers(1, 29)):02d}"
