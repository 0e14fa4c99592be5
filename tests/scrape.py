"""Reading a Prometheus text exposition the way a scraper does (prometheus_client.parser)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """Every sample of one scrape."""

    def __init__(self, text: str) -> None:
        self.samples = [Sample(s.name, dict(s.labels), s.value)
                        for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)

    def label_values(self) -> set[str]:
        return {v for s in self.samples for v in s.labels.values()}
