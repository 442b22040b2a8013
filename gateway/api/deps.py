"""Request dependencies: the process runtime and the caller's verified user id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import TooManyRequests, Unauthorized
from gateway.metrics import RATE_LIMITED
from gateway.middleware import log_fields
from gateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="A JWT whose `sub` is the hub user id.")


def get_runtime(request: Request) -> Runtime:
    """The gateway runtime of this process."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The verified user id of `Authorization: Bearer <jwt>`; 401 otherwise."""
    if credentials is None:
        raise Unauthorized("send Authorization: Bearer <jwt>")
    runtime = get_runtime(request)
    identity = runtime.verifier.verify(credentials.credentials)
    log_fields(request.scope)["user_id"] = identity.user_id
    if wait := runtime.rest_limit.acquire(identity.user_id):
        RATE_LIMITED.labels("rest_user").inc()
        raise TooManyRequests(f"over {runtime.rest_limit.spec} requests per user", wait)
    return identity.user_id


UserId = Annotated[str, Depends(current_user)]
# Routes that also take another proof (a signed URL) read the bearer token themselves.
OptionalBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
