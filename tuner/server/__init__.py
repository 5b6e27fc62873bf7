"""``tuner serve``: the HTTP API and the live pages over the store.

:func:`create_app` builds the Starlette application (``tuner.server.app``); uvicorn serves it.
Reads answer from the store alone; writes (create, stop, delete a study) need the token.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The ASGI app over a store; see :func:`tuner.server.app.create_app`."""
    from tuner.server.app import create_app as build

    return build(*args, **kwargs)
