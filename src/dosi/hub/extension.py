"""Parts of the hub that bring their own routes and background work.

The notifier, history retention and the IoT agent are extensions: `create_app`
mounts their routes and starts them after the store opens, and stops them (in
reverse order) before the store closes, so their last writes still commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from dosi.hub.state import HubState


class Extension(Protocol):
    @property
    def routes(self) -> Sequence[BaseRoute]: ...

    async def start(self, state: HubState) -> None: ...

    async def stop(self) -> None: ...
