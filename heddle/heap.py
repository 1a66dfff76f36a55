"""Short collector pauses for a process that holds a large, long-lived heap.

CPython's cyclic collector traverses every tracked object of a generation it collects; a
control plane holding 10,000 loaded documents and a thousand proxies' configuration has
millions, and one full collection then holds the interpreter (the event loop included)
for half a second to several seconds. Heddle's loaded configuration and built resources
are acyclic (refcounting frees them; a test checks that loading and pushing leave no cyclic
garbage), so what has lived through a unit of work is moved out of the collector's reach
with `gc.freeze()`: later collections traverse only what is new since, and objects frozen
are still freed by refcounting once released.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Call after a unit of work (a slice of a config load, one proxy's build): what it
    left alive is not traversed again. O(1): the generations' lists are spliced."""
    gc.freeze()
