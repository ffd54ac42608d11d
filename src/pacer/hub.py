"""Agents on the Hugging Face Hub: `hf://user/name[@revision]` names a packaged agent (`pacer package`), fetched
into Hugging Face's own cache with `huggingface_hub` (the hub extra) and then loaded like any folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pacer.errors import PacerError, first_line

PREFIX = "hf://"


def is_hub(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse(source: str) -> tuple[str, str | None]:
    """'hf://user/name@rev' -> ('user/name', 'rev'); the repo must be 'owner/name'."""
    repo, _, revision = source.removeprefix(PREFIX).partition("@")
    owner, slash, name = repo.partition("/")
    if not (owner and slash and name) or "/" in name:
        raise PacerError(f"{source!r} is not a Hub agent: write hf://owner/name (or hf://owner/name@revision)")
    return repo, revision or None


def hub_api() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise PacerError("the Hugging Face Hub needs huggingface_hub: pip install 'pacer-rl[hub]'") from None
    return huggingface_hub


def download(source: str) -> Path:
    """The local folder of a Hub agent (downloaded once; HF_HUB_OFFLINE=1 uses the cache only)."""
    repo, revision = parse(source)
    hf = hub_api()
    try:
        return Path(hf.snapshot_download(repo_id=repo, revision=revision))
    except Exception as exc:  # no network, no such repo, no access: the library's words, on one line
        raise PacerError(f"could not fetch {source}: {_why(exc)}") from None


def upload(folder: Path, repo: str, message: str, private: bool) -> str:
    """Create the model repo if needed and upload the folder as one commit; returns the repo's URL."""
    parse(PREFIX + repo)
    hf = hub_api()
    try:
        api = hf.HfApi()
        url = api.create_repo(repo_id=repo, repo_type="model", exist_ok=True, private=private)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message=message)
    except Exception as exc:
        raise PacerError(f"could not push to {repo}: {_why(exc)}") from None
    return str(url)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc) or '(no message)'}"

