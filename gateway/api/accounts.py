"""REST: the caller's connected platform accounts, through the shared account store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from gateway.api.deps import RuntimeDep, UserId
from gateway.api.models import AccountList, NewAccount
from gateway.errors import Conflict, NotFound
from hubcore.accounts import AccountView

router = APIRouter(prefix="/api", tags=["accounts"])


class TooManyAccounts(Conflict):
    code = "too_many_accounts"


@router.post("/accounts", status_code=201, response_model=AccountView)
async def create_account(user_id: UserId, runtime: RuntimeDep, body: NewAccount) -> AccountView:
    """Connect an account; 422 naming what is wrong with platform or credentials, 409 when
    the caller has `HUB_MAX_ACCOUNTS_PER_USER` already."""
    most = runtime.settings.max_accounts_per_user
    # A check before the insert: concurrent creations may pass it together, a few at most.
    if await runtime.accounts.count(user_id) >= most:
        raise TooManyAccounts(
            f"this user has {most} accounts connected, the most allowed "
            "(HUB_MAX_ACCOUNTS_PER_USER); delete one first"
        )
    account = await runtime.accounts.create(
        user_id, body.platform, body.external_id, body.credentials, body.mode
    )
    return account.view()


@router.get("/accounts", response_model=AccountList)
async def list_accounts(user_id: UserId, runtime: RuntimeDep) -> AccountList:
    """The caller's accounts, oldest first; credentials are never returned."""
    return AccountList(accounts=[a.view() for a in await runtime.accounts.list(user_id)])


@router.delete("/accounts/{account_id}", status_code=204, response_class=Response)
async def delete_account(
    user_id: UserId, runtime: RuntimeDep, account_id: Annotated[str, Path(max_length=128)]
) -> Response:
    """Disconnect one of the caller's accounts; 404 for anyone else's."""
    if not await runtime.accounts.delete(user_id, account_id):
        raise NotFound(f"no account {account_id!r}")
    return Response(status_code=204)
