"""A prepared command run to its end as a sequence of events: its output as it comes, the
bridge's own notes (a run followed after a trigger; the run a stopped `tasks test` left,
ended: bridge.calls.temporary_runs), then one :class:`Result`, assembled by
:func:`bridge.calls.result.assemble` whoever consumes the events: one envelope, a stream's
job, a detached job.

The events come from an async generator: consume it inside ``contextlib.aclosing`` so that
a consumer that stops early stops the command (the command path's ``finally``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from bridge.calls import confined
from bridge.calls.events import Event, Note, Output, Result
from bridge.calls.result import CappedOutput, Prepared, Ran, assemble, ended, output_texts
from bridge.calls.temporary_runs import FIELD, TaskTest, end_left_runs, noted
from bridge.offload import to_the_end
from bridge.process.command import Command

# What follows a command that succeeded (a triggered run followed, a service confirmed):
# it may change the result (``Ran``) and says its lines as it goes.
FollowUp = Callable[[Prepared, Ran], AsyncIterator[str]]


class Watch:
    """What the consumer wants to know while the command runs (a job: its pid, how it was
    stopped). The default watches nothing."""

    async def started(self, command: Command) -> None:
        """The command runs (its pid is known)."""

    def stopped_by(self) -> str | None:
        """Who or what of the consumer's stopped the command, if it did (the result's warning
        says it, and how the command ended then)."""
        return None


async def run(
    prepared: Prepared,
    *,
    with_output: bool,
    follow_up: FollowUp | None = None,
    watch: Watch | None = None,
    release: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[Event, None]:
    """Run the command; ``with_output``: the result envelope holds the output (capped),
    else only what its JSON needs is kept. ``release`` gives back what the command held
    (its slot, its exchange file) once it ended, before what follows it: a wait for a run
    holds no slot."""
    settings = prepared.call.settings
    watch = watch or Watch()
    texts = output_texts(prepared.api, settings)
    keep: tuple[str, ...] = (
        tuple(texts) if with_output else ("stdout",) if prepared.plan.json_output else ()
    )
    withheld = confined.withheld_streams(prepared.call)
    hidden = confined.hidden_streams(prepared.call)
    keep = tuple(name for name in keep if name not in hidden)
    hidden_characters = dict.fromkeys(sorted(hidden), 0)
    kept = {name: CappedOutput(settings.max_output_size) for name in keep}
    test = TaskTest.of(prepared)  # a `tasks test`: the run it makes is watched for
    command: Command | None = None
    try:
        async with prepared.call.commands.run(prepared.spec) as command:
            if test is not None:
                test.pid = command.pid
            await watch.started(command)
            async for chunk in command:
                if test is not None:
                    test.feed(chunk.stream, chunk.data)
                text = texts[chunk.stream].feed(chunk.data)
                if chunk.stream in kept:
                    kept[chunk.stream].add(text)
                if chunk.stream in hidden:
                    hidden_characters[chunk.stream] += len(text)
                if text and chunk.stream not in withheld:
                    yield Output(chunk.stream, text)
            for name, stream_text in texts.items():
                text = stream_text.finish()
                if name in kept:
                    kept[name].add(text)
                if name in hidden:
                    hidden_characters[name] += len(text)
                if text and name not in withheld:
                    yield Output(name, text)
    except BaseException:
        # Left early (its client went away, its job's task was cancelled): nobody reads the
        # result, but the run a killed test left behind is ended all the same.
        if test is not None and command is not None and test.left_behind(command.outcome):
            await to_the_end(end_left_runs(prepared, test))
        raise
    assert command is not None and command.outcome is not None  # it ran and its output ended
    outcome = command.outcome
    ran = await ended(prepared, outcome, kept, with_output, watch.stopped_by())
    if any(hidden_characters.values()):
        said = {name: count for name, count in hidden_characters.items() if count}
        ran.warnings.append(confined.withheld_warning(said))
    if test is not None and test.left_behind(outcome):
        runs, warnings = await end_left_runs(prepared, test)
        ran.warnings.extend(warnings)
        if runs:
            ran.extra[FIELD] = runs
            yield Note(noted(runs))
    if release is not None:
        await release()
    if outcome.exit_code == 0 and follow_up is not None:
        async for line in follow_up(prepared, ran):
            yield Note(line)
    yield Result(assemble(prepared, ran, with_output), outcome)


async def result_of(events: AsyncGenerator[Event, None]) -> Result:
    """Consume ``events`` to their end (the output is in the result): the result."""
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, Result):
                return event
    raise AssertionError("a run always ends with its result")
