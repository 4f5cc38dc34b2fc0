"""``dialogsum-batch cache``: list or clear the conversion and download caches."""

from __future__ import annotations

from typing import Any

import click

from .common import CONTEXT, command_log, errors_shown, log_options


@click.command("cache", context_settings=CONTEXT)
@click.option("--list", "list_", is_flag=True, help="Show every entry (the default action).")
@click.option("--clear", is_flag=True, help="Remove entries: all, or those unused for --older-than days.")
@click.option("--older-than", type=click.FloatRange(0), metavar="DAYS", help="With --clear: only older entries.")
@log_options
def cache(**options: Any) -> None:
    """Show the caches (CTranslate2 conversions, downloaded corpora) or free them. $DIALOGSUM_CACHE moves them.

    \b
      dialogsum-batch cache --list
      dialogsum-batch cache --clear --older-than 30
    """
    from ..caches import clear_caches, describe_caches

    if options["older_than"] is not None and not options["clear"]:
        raise click.UsageError("--older-than applies to --clear")
    with errors_shown(command_log(options), options["debug"]):
        click.echo(clear_caches(options["older_than"]) if options["clear"] else describe_caches())
