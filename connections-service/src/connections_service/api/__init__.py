"""HTTP views: `/invoice-connections` (jarvis users) and `/internal/connections` (workers); rendering.py
shapes what they answer."""

from __future__ import annotations

from bobdesk_shared.web import ErrorSchema
from flask import current_app

from ..services import ConnectionService, WorkerService


def connection_service() -> ConnectionService:
    return current_app.extensions["connection_service"]


def worker_service() -> WorkerService:
    return current_app.extensions["worker_service"]


def error(blp, status: int, description: str):
    """Document an error answer (the shared `{"error": {"code", "message"}}` shape)."""
    return blp.alt_response(status, schema=ErrorSchema, description=description)
