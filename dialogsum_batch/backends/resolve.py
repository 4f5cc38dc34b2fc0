"""Find a model on disk: a local folder, the Hugging Face cache, or (when reachable) the Hub.

Hub repos resolve as transformers' own ``from_pretrained`` resolves them: main when it holds
safetensors (or pickle weights and pickle is allowed), otherwise the open safetensors conversion
pull request that SFconvertbot opened on top of main (``refs/pr/N``). See
``transformers.safetensors_conversion``; downloading main first and loading the folder would skip it.

Offline, huggingface_hub retries for about half a minute before it gives up; a cron job deserves
a one-line answer in a second or two instead: ``hub.hub_unreachable`` is asked first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import MODEL_ENV
from ..errors import ModelError, first_line
from ..hub import hub_endpoint, hub_unreachable, is_hub_id
from ..logs import Say
from ..modelfiles import weight_kind

if TYPE_CHECKING:
    from huggingface_hub import HfApi

WANTED_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "model.bin"]  # model.bin: CTranslate2
PICKLE_FILES = ["*.bin"]
# What transformers looks for; only this author is trusted, so nobody else's PR can slip weights in.
CONVERSION_TITLE = "Adding `safetensors` variant of this model"
CONVERSION_BOT = "SFconvertbot"


class PickleOnlyError(ModelError):
    """The Hub repo has only pickle weights and no conversion to fall back on."""

    def __init__(self, repo_id: str):
        self.reason = (
            f"model '{repo_id}' has only pickle weights (*.bin) on main and no open safetensors "
            f"conversion pull request by {CONVERSION_BOT}"
        )
        super().__init__(f"{self.reason}; pass --allow-pickle to load them anyway")


def check_not_missing(name: str) -> None:
    """ModelError for a name that can only be a local folder and is not there: ./run, /srv/model and ~/model
    are paths, never Hub ids. Cheap and offline, so a job can say it before anything starts."""
    if not is_hub_id(name) and not Path(name).expanduser().is_dir():
        raise ModelError(f"model folder '{name}' does not exist; pass --model DIR or set {MODEL_ENV}")


def resolve_model(name: str, allow_pickle: bool = False, log: Say | None = None) -> str:
    """A local folder for ``name``: the folder itself, or a Hub snapshot (cached or fetched).

    For a Hub id, ``log`` gets one line naming the revision used (main or ``refs/pr/N``).
    """
    say = log or (lambda _: None)
    check_not_missing(name)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    cached = cached_snapshot(name, allow_pickle)
    if cached:
        folder, revision = cached
        say(f"model {name}: revision {describe(revision)}, from the Hugging Face cache")
        return folder
    parent = Path(name).expanduser().parent
    if parent.is_dir():  # runs/smoke where runs/ is here: a folder that is missing, not a Hub id to look up
        raise ModelError(
            f"model folder '{name}' does not exist ({parent}/ has no '{Path(name).name}'); "
            f"pass --model DIR or set {MODEL_ENV}"
        )
    reason = hub_unreachable()
    if reason:
        raise ModelError(
            f"model '{name}' is not cached and the Hugging Face Hub is unreachable ({reason}); "
            f"pass --model DIR or set {MODEL_ENV} to a local model folder"
        )
    folder, revision = download(name, allow_pickle)
    say(f"model {name}: revision {describe(revision)}, downloaded from {hub_endpoint()}")
    return folder


def describe(revision: str) -> str:
    """The revision as the log names it: a pull request says why it was chosen."""
    if revision.startswith("refs/pr/"):
        return f"{revision} (the safetensors conversion by {CONVERSION_BOT}; main has only pickle weights)"
    return revision


def patterns(allow_pickle: bool) -> list[str]:
    """Files to fetch: config, tokenizer and safetensors; pickle weights only when allowed."""
    return WANTED_FILES + (PICKLE_FILES if allow_pickle else [])


def has_weights(folder: Path, allow_pickle: bool) -> bool:
    """Weights the loaders will accept: safetensors, a CTranslate2 model.bin, or pickle when allowed."""
    kind = weight_kind(folder)
    return kind in ("safetensors", "ctranslate2") or (kind == "pickle" and allow_pickle)


# ----------------------------------------------------------------------------- the cache (no network)


def cached_snapshot(repo_id: str, allow_pickle: bool) -> tuple[str, str] | None:
    """A cached snapshot with weights the loaders accept, and its revision: main, else a cached conversion PR."""
    for revision in ["main", *cached_pull_requests(repo_id)]:
        folder = local_snapshot(repo_id, revision, allow_pickle)
        if folder and has_weights(Path(folder), allow_pickle):
            return folder, revision
    return None


def local_snapshot(repo_id: str, revision: str, allow_pickle: bool) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns(allow_pickle), local_files_only=True
        )
    except Exception:  # not cached (or cached incomplete), in any of the ways huggingface_hub reports it
        return None


def cached_pull_requests(repo_id: str) -> list[str]:
    """The ``refs/pr/N`` revisions in the cache, newest first (snapshot_download keeps a ref file per revision)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    refs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "refs/refs/pr"
    numbers = sorted((int(ref.name) for ref in refs.glob("*") if ref.name.isdigit()), reverse=True)
    return [f"refs/pr/{number}" for number in numbers]


# ----------------------------------------------------------------------------- the Hub


def download(repo_id: str, allow_pickle: bool) -> tuple[str, str]:
    """Fetch the revision transformers would load into the cache; the folder and the revision."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        revision = pick_revision(HfApi(endpoint=hub_endpoint()), repo_id, allow_pickle)
        # A branch name, not the commit: the cache records refs/<revision>, which the offline lookup reads.
        folder = snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns(allow_pickle), endpoint=hub_endpoint()
        )
        return folder, revision
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot download model '{repo_id}': {first_line(exc)}") from exc


def pick_revision(api: HfApi, repo_id: str, allow_pickle: bool) -> str:
    """main, unless its weights are pickle only and pickle is not allowed: then the bot's conversion PR."""
    files = [sibling.rfilename for sibling in api.model_info(repo_id).siblings or []]
    if allow_pickle or "model.bin" in files or any(name.endswith(".safetensors") for name in files):
        return "main"  # transformers loads pickle from main with use_safetensors=None, too
    pull_request = conversion_pull_request(api, repo_id)
    if pull_request:
        return pull_request
    if any(name.endswith(".bin") for name in files):
        raise PickleOnlyError(repo_id)
    return "main"  # no weights at all: the loader says so in its own words


def conversion_pull_request(api: HfApi, repo_id: str) -> str | None:
    """``refs/pr/N`` of the open conversion PR by SFconvertbot whose parent is main's head (transformers' rule)."""
    main_head = api.list_repo_commits(repo_id)[0].commit_id
    for discussion in api.get_repo_discussions(
        repo_id, author=CONVERSION_BOT, discussion_type="pull_request", discussion_status="open"
    ):
        # The filters are requests; check each condition again here, as transformers does.
        if (
            discussion.title == CONVERSION_TITLE
            and discussion.author == CONVERSION_BOT
            and discussion.status == "open"
            and discussion.is_pull_request
        ):
            commits = api.list_repo_commits(repo_id, revision=discussion.git_reference)
            if len(commits) > 1 and commits[1].commit_id == main_head:  # not stale: converted from today's main
                return discussion.git_reference
    return None
