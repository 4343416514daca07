"""``mr2ct serve``: a local TF Serving-compatible REST endpoint for an export."""

from __future__ import annotations

import click

from .main import friendly_errors


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="saved_models/<name> (all versions) or saved_models/<name>/<version>.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default serves this machine only.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (TF Serving's REST port by default).")
@click.option("--max-request-mb", default=256, show_default=True, type=click.IntRange(min=1),
              help="Largest request body accepted.")
@click.option("--verbose", is_flag=True, help="Log every request.")
@friendly_errors
def serve(model_dir, host, port, max_request_mb, verbose):
    """Serve an export over TF Serving's REST API (for machines without TF Serving)."""
    from mr2ct.serving.server import ModelRepository, ModelServer

    repository = ModelRepository(model_dir)
    server = ModelServer(repository, host=host, port=port, max_bytes=max_request_mb << 20, verbose=verbose)
    versions = ", ".join(str(v) for v in sorted(repository.versions))
    click.echo(f"serving model '{repository.name}' (versions {versions}) at {server.url}/v1/models/{repository.name}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.httpd.server_close()
