"""`gen view FOLDER`: index the folder, serve the page on 127.0.0.1, print the URL, open a browser."""
from __future__ import annotations

import threading
import webbrowser
from pathlib import Path

import click


@click.command("view")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
def view_command(folder: Path, port: int, no_browser: bool) -> None:
    """Look at a run or rounds folder in the browser: kept, rejected and error records with
    their conversations, scores and reasons; filters, search, and what changed between rounds.

    \b
    gen view runs/cur                 # one run folder (any stage)
    gen view runs/rounds --port 8765  # round0/, round1/, ...
    """
    from generators.outputs.view.data import ViewData
    from generators.outputs.view.server import ViewServer

    data = ViewData(folder)
    server = ViewServer(data, port)
    runs = len(data.layout.runs)
    click.echo(f"view: {len(data.index):,} records in {runs} run{'s' * (runs != 1)}, "
               f"indexed in {data.seconds:.2f}s")
    click.echo(f"view: {server.url}  (Ctrl-C to stop)")
    if not no_browser:
        # in a thread: a slow browser launcher must not hold up the first request
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("view: stopped")
    finally:
        server.server_close()
