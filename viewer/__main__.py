"""Entry point of ``python -m viewer`` and the ``fraud-viewer`` console script.

Builds the settings, picks the renderer for the output (terminal, pipe or ``--json``; cases or
``--windows``) and runs the loop; every way out (done, broker down, Ctrl-C, SIGTERM, ``q`` in the
live view) is an exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from collections.abc import Sequence

from rich.console import Console

from viewer.cli import OutputMode, ViewerSettings, parse_settings
from viewer.escaping import printable
from viewer.keys import keypresses
from viewer.live import LiveRenderer
from viewer.render import AlertRenderer, CaseRenderer, OneCase, WindowRenderer
from viewer.run import ExitCode, run


def make_renderer(settings: ViewerSettings) -> AlertRenderer:
    """The renderer for the settings' output mode, writing to stdout."""
    if settings.output is OutputMode.LIVE:
        title = f"fraud alerts · topic {printable(settings.topic)} · {settings.bootstrap}"
        return LiveRenderer(
            Console(),
            title=title,
            evidence=settings.evidence,
            windows=settings.windows,
            focus=settings.case,
            keys=sys.stdin.isatty(),
        )
    # A backlog read with --from-beginning is shown settled: each case (window) once.
    backlog = settings.from_beginning
    out = sys.stdout
    renderer: AlertRenderer
    if settings.output is OutputMode.JSON and settings.windows:
        renderer = WindowRenderer.json(out, backlog=backlog)
    elif settings.output is OutputMode.JSON:
        renderer = CaseRenderer.json(out, backlog=backlog)
    elif settings.windows:
        renderer = WindowRenderer.plain(out, evidence=settings.evidence, backlog=backlog)
    else:
        renderer = CaseRenderer.plain(out, evidence=settings.evidence, backlog=backlog)
    return renderer if settings.case is None else OneCase(renderer, settings.case)


async def _run_until_stopped(settings: ViewerSettings, renderer: AlertRenderer) -> ExitCode:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        task.cancel()

    def on_key(key: str) -> None:
        if key in "qQ" and not terminated.is_set():
            terminate()
        elif key in "eE" and isinstance(renderer, LiveRenderer):
            renderer.toggle_evidence()

    # Kubernetes stops a Deployment's pod with SIGTERM: end as cleanly as on Ctrl-C, exit 0.
    with contextlib.suppress(NotImplementedError):  # no signal handlers on some platforms
        loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        if not isinstance(renderer, LiveRenderer):
            return await run(settings, renderer)
        with keypresses(sys.stdin.fileno(), on_key):
            return await run(settings, renderer)
    except asyncio.CancelledError:
        if terminated.is_set():
            return ExitCode.OK
        # Ctrl-C: asyncio.run cancelled us and turns this into KeyboardInterrupt.
        raise
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the viewer; returns the process exit code."""
    # A terminal or pipe that cannot encode a character (LANG=C, an odd PYTHONIOENCODING) must
    # not end the viewer with UnicodeEncodeError in the middle of an alert.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    settings = parse_settings(argv, os.environ, stdout_is_terminal=sys.stdout.isatty())
    renderer = make_renderer(settings)
    try:
        return int(asyncio.run(_run_until_stopped(settings, renderer)))
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader left (`fraud-viewer --json | head -1`): a normal end for a pipe. Point
        # stdout at /dev/null so the final flush at exit does not raise the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.OK)
    finally:
        renderer.close()


if __name__ == "__main__":
    sys.exit(main())
