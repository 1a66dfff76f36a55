"""How many responses are built and not yet written, at most.

A thousand proxies connecting at once each get their whole configuration (1.4 MB apiece at
1000 services); built all together and waiting for their streams, they would hold it all in
memory at once. Istio throttles concurrent pushes the same way (100 by default). A slot is
taken before a response is built and given back once gRPC has taken it for writing, or
after `held_at_most` seconds, so a proxy that stops reading cannot keep one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

SENDING_AT_ONCE = 100
SLOT_HELD_AT_MOST = 5.0


class SendThrottle:
    def __init__(self, at_once: int = SENDING_AT_ONCE,
                 held_at_most: float = SLOT_HELD_AT_MOST) -> None:
        self._slots = asyncio.Semaphore(at_once)
        self._held_at_most = held_at_most
        self.in_use = 0

    async def slot(self) -> Callable[[], None]:
        """Wait for a slot; call the returned function (idempotent) to give it back."""
        await self._slots.acquire()
        self.in_use += 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                timer.cancel()
                self.in_use -= 1
                self._slots.release()

        timer = asyncio.get_running_loop().call_later(self._held_at_most, give_back)
        return give_back
