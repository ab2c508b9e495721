import anyio
import pytest

from workbench.tasks import BackgroundTasks

pytestmark = pytest.mark.anyio


async def test_open_in_one_task_close_in_another() -> None:
    bg = BackgroundTasks()
    ticks: list[int] = []
    cancelled = anyio.Event()

    async def worker() -> None:
        try:
            while True:
                ticks.append(1)
                await anyio.sleep(0.01)
        finally:
            cancelled.set()

    async def opener() -> None:
        await bg.open()
        bg.start_soon(worker)

    async with anyio.create_task_group() as tg:  # the opening task ends before the close
        tg.start_soon(opener)
    await anyio.sleep(0.05)
    assert ticks
    async with anyio.create_task_group() as tg:
        tg.start_soon(bg.aclose)
    assert cancelled.is_set()
    with pytest.raises(RuntimeError, match="not open"):
        bg.start_soon(worker)
