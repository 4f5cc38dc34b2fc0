"""``invoke cache``: ``dialogsum-batch cache`` from a checkout."""

from __future__ import annotations

from invoke.exceptions import Exit

from . import register

HELP = {
    "list_": "Show every entry (the default action)",
    "clear": "Remove entries (all, or those unused for --older-than days) and leftovers",
    "older_than": "With --clear: only entries not used for this many days",
}


@register(help=HELP)
def cache(c, list_=False, clear=False, older_than=None):
    """Show the caches (CTranslate2 conversions, downloaded corpora) under $DIALOGSUM_CACHE, or free them.

    invoke cache --list
    invoke cache --clear --older-than 30
    """
    from ..caches import clear_caches, describe_caches

    if older_than not in (None, "") and not clear:
        raise Exit("cache: --older-than applies to --clear", code=2)
    if clear:
        print(clear_caches(float(older_than) if older_than not in (None, "") else None))
    else:
        print(describe_caches())
