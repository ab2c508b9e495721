"""The real sandbox behind the server: each MCP client gets its own container, nothing one
client does is visible to another, and a client that leaves — cleanly or mid-call — leaves
no container behind."""

from __future__ import annotations

import anyio
import pytest
from serving import http_client, sandbox_workbench_or_skip, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox_workbench():  # type: ignore[no-untyped-def]
    return sandbox_workbench_or_skip(pool_size=1, timeout=20)


def container_exists(container_id: str) -> bool:
    import docker

    from sandbox.container import docker_client

    try:
        docker_client().api.inspect_container(container_id)
        return True
    except docker.errors.NotFound:
        return False


async def test_each_client_gets_its_own_container_removed_when_it_leaves(sandbox_workbench, mode: str) -> None:  # type: ignore[no-untyped-def]
    box = sandbox_workbench
    # Served directly: CompositeWorkbench.start runs each source's start() in a child task, which the
    # sandbox's own task group cannot outlive (reported to the lead).
    async with serving(box) as served:
        async with http_client(served.url, mode="legacy") as alice:
            wrote = await alice.call_tool("write_file", {"path": "secret.txt", "content": "alice's"})
            assert not wrote.is_error, wrote.content
            (alice_session,) = box._sessions  # one container, for alice
            alice_container = box._sessions[alice_session].container_id
            assert alice_container and container_exists(alice_container)

            async with http_client(served.url, mode=mode, headers={"Workbench-Session": "bob"}) as bob:
                peek = await bob.call_tool("run_bash", {"code": "cat secret.txt; hostname"})
                assert "alice's" not in peek.content[0].text  # bob has his own container
                assert len(box._sessions) == 2
            mine = await alice.call_tool("read_file", {"path": "secret.txt"})
            assert "alice's" in mine.content[0].text

        # alice's client deleted its session on exit: her container is gone
        with anyio.fail_after(20):
            while container_exists(alice_container):
                await anyio.sleep(0.1)
        assert alice_session not in box._sessions


async def test_a_client_gone_mid_run_leaves_no_process_and_no_container(sandbox_workbench) -> None:  # type: ignore[no-untyped-def]
    box = sandbox_workbench
    async with serving(box) as served:
        async with anyio.create_task_group() as tg:

            async def run_then_vanish() -> None:
                async with http_client(served.url, mode="legacy") as client:
                    await client.call_tool("run_bash", {"code": "sleep 60"})

            tg.start_soon(run_then_vanish)
            with anyio.fail_after(20):
                while not box._sessions:
                    await anyio.sleep(0.05)
            await anyio.sleep(1.0)  # the run is under way in the container
            (session,) = box._sessions
            container = box._sessions[session].container_id
            tg.cancel_scope.cancel()
        with anyio.fail_after(20):
            while served.server.inflight:
                await anyio.sleep(0.05)
        from sandbox.container import docker_client

        def sleeping() -> bool:
            return any("sleep 60" in " ".join(p) for p in docker_client().api.top(container)["Processes"] or [])

        with anyio.fail_after(10):  # the cancelled run was killed inside the container
            while sleeping():
                await anyio.sleep(0.1)
        # Its legacy session stays open until it idles out (the client never said goodbye);
        # ending it — as the idle timeout would — removes the container.
        await served.server.sessions.close(session)
        assert container is not None and not container_exists(container)
