"""The standard gRPC health service (`grpc.health.v1.Health`, grpcio-health-checking), answered
by asking the store, for load balancers, `grpc_health_probe` and service managers.

Each Check runs `probe` (it raises when the store cannot answer), bounded (castore.probing: a
hung store costs one thread, not one per Check, and each Check answers in time): SERVING while the store
answers, NOT_SERVING while it does not, for the server as a whole ("") and for each service
name. Watch streams follow what the latest Check found.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from castore.grpc_server import Register
from castore.probing import BoundedProbe

log = logging.getLogger(__name__)


class ProbingHealthServicer(health.HealthServicer):
    def __init__(self, probe: Callable[[], object], services: Iterable[str]) -> None:
        super().__init__()
        self._probe = BoundedProbe(probe)
        self._services = (health.OVERALL_HEALTH, *services)

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        status = health_pb2.HealthCheckResponse.SERVING if self._answers() else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._services:
            self.set(name, status)
        return super().Check(request, context)

    def _answers(self) -> bool:
        try:
            self._probe()
        except Exception as e:  # noqa: BLE001 - whatever fails, the store does not answer
            log.warning("health check: the store does not answer: %s", e)
            return False
        return True


def health_service(probe: Callable[[], object], services: Iterable[str]) -> Register:
    """The registration of a health service that probes with `probe` and knows `services` by name."""
    def register(server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(ProbingHealthServicer(probe, services), server)
    return register
