"""The weights file of an open_clip pretrained tag (``pretrained='openai'``):
from the cache when it is there, downloaded when the network allows, and a
one-line error within seconds when neither (offline machines, clusters
without internet), saying where to put the file.

open_clip's own download tries the HuggingFace hub (the safetensors file,
then the ``.bin``) with retries and then the URL: offline that took 75 s
before a traceback. Here the caches are looked up first, with no network
at all (``huggingface_hub.try_to_load_from_cache``; open_clip's
``~/.cache/clip`` for URLs), then each source's host gets one connection
attempt of :data:`PROBE_TIMEOUT` seconds; only a reachable source is
downloaded from.
"""
import os
import os.path as osp
import socket
from typing import List, Optional
from urllib.parse import urlparse

from ..utils.checkpoint import CheckpointError

#: Seconds one connection attempt to a download host may take.
PROBE_TIMEOUT = 3.0
#: open_clip's file names on the hub when a tag names a repository only.
HUB_FILES = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')
URL_CACHE = osp.join('~', '.cache', 'clip')  # open_clip's default


class PretrainedUnavailableError(CheckpointError):
    """An open_clip tag's weights are neither cached nor downloadable."""


def _hub_repo(tag_cfg: dict):
    """``(repo id, [file names])`` of the tag's hub entry, or None."""
    hub = tag_cfg.get('hf_hub', '')
    if not hub:
        return None
    repo, filename = osp.split(hub)  # 'org/model/': the repository only
    return repo, [filename] if filename else list(HUB_FILES)


def cached_file(tag_cfg: dict) -> Optional[str]:
    """The tag's weights file if a cache already holds it (no network)."""
    hub = _hub_repo(tag_cfg)
    if hub is not None:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        for name in hub[1] if try_to_load_from_cache else ():
            path = try_to_load_from_cache(hub[0], name)
            if isinstance(path, str) and osp.isfile(path):
                return path
    url = tag_cfg.get('url', '')
    if url:
        path = osp.join(osp.expanduser(URL_CACHE), osp.basename(url))
        if osp.isfile(path):
            return path
    return None


def _hosts(tag_cfg: dict) -> List[str]:
    hosts = []
    if tag_cfg.get('hf_hub') and os.environ.get(
            'HF_HUB_OFFLINE', '').lower() not in ('1', 'true', 'yes', 'on'):
        try:
            from huggingface_hub import constants
            hosts.append(urlparse(constants.ENDPOINT).hostname)
        except ImportError:
            pass
    if tag_cfg.get('url'):
        hosts.append(urlparse(tag_cfg['url']).hostname)
    return [h for h in hosts if h]


def unreachable(tag_cfg: dict) -> Optional[str]:
    """None when a download host of the tag answers; else why not."""
    hosts = _hosts(tag_cfg)
    if not hosts:
        return 'HF_HUB_OFFLINE is set and the tag has no other source'
    reasons = []
    for host in hosts:
        try:
            socket.create_connection((host, 443), PROBE_TIMEOUT).close()
            return None
        except OSError as err:
            reasons.append(f'{host}: {err.strerror or err}')
    return '; '.join(reasons)


def tag_weights_file(name: str, tag: str, tag_cfg: dict) -> str:
    """The local weights file of open_clip model ``name``'s tag: cached, or
    downloaded by open_clip when a host answers; else
    :class:`PretrainedUnavailableError` saying where to put it."""
    path = cached_file(tag_cfg)
    if path is not None:
        return path
    why = unreachable(tag_cfg)
    if why is not None:
        hub = _hub_repo(tag_cfg)
        where = [f'the HuggingFace cache ({hub[0]}, file '
                 f'{" or ".join(hub[1])})'] if hub else []
        if tag_cfg.get('url'):
            where.append(f'{URL_CACHE}/{osp.basename(tag_cfg["url"])}')
        raise PretrainedUnavailableError(
            f'pretrained={tag!r} ({name}): the weights are not cached and '
            f'cannot be downloaded here ({why}). Put them in '
            f'{" or ".join(where)} (on a machine with network: python -c '
            f'"import open_clip; open_clip.create_model({name!r}, '
            f'pretrained={tag!r})", then copy the cache), or give the '
            'file itself: pretrained=\'/path/to/weights\' (docs/weights.md,'
            ' "Offline")')
    import open_clip
    path = open_clip.download_pretrained(tag_cfg)
    if not path:
        raise PretrainedUnavailableError(
            f'open_clip has no download for {name} {tag!r}')
    return path
