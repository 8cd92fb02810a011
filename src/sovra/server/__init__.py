"""The HTTP edge: FastAPI application over an opened deployment."""

from sovra.server.app import create_app

__all__ = ["create_app"]
