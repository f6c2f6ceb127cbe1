"""A process that writes to a memory store as fast as it can until it is killed.

``python -m tests.memory.crash_writer URL|- STATE_DIR ROUND``: 8 tasks each store batches of
three facts (one transaction per batch) and turns, and now and then link two viewers; after
each write returns (committed) a line ``batch <id>`` / ``turn <id>`` / ``link <a> <b>`` goes
to stdout, so the test knows what must survive a SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bots.memory.store import MemoryStore


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def writer(store: MemoryStore, round_: str, task: int) -> None:
    n = 0
    while True:
        n += 1
        viewer = f"{round_}-{task}-{n % 5}"
        person = await store.person("twitch", viewer, name=f"viewer {viewer}")
        batch = f"{round_}-{task}-{n}"
        await store.remember("mika", person, [f"batch {batch} fact {k}" for k in range(3)],
                             source=f"message {batch}", platform="twitch")
        say(f"batch {batch}")
        await store.add_turn("mika", person, f"said {batch}", f"replied {batch}",
                             platform="twitch")
        say(f"turn {batch}")
        if n % 7 == 0:
            other = f"{round_}-{task}-d{n}"
            await store.link(("twitch", viewer), ("discord", other))
            say(f"link {viewer} {other}")


async def main() -> None:
    url = None if sys.argv[1] == "-" else sys.argv[1]
    store = await MemoryStore.open(url, state_dir=Path(sys.argv[2]))
    say("ready")
    async with asyncio.TaskGroup() as tg:
        for task in range(8):
            tg.create_task(writer(store, sys.argv[3], task), name=f"crash-writer:{task}")


if __name__ == "__main__":
    asyncio.run(main())
