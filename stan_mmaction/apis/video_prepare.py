"""Preparing videos for training: each video re-encoded once, smaller (short
side 256 by default, never upscaled) and with a keyframe every few frames,
so a training pipeline that reads 8 spread frames decodes a few frames per
keyframe instead of a whole group of pictures, and encoded for fast
decoding (x264's ``fastdecode`` tune: no CABAC, no deblocking filter, no
weighted prediction; files about 10% larger, decoding 1.6x faster on the
data benchmark). PyAV does the work (its wheels carry FFmpeg and libx264:
no ``ffmpeg`` command needed).

The run is resumable: every finished file is written beside its place and
renamed into it, and recorded in ``DST/manifest.json`` (atomically, after
each file), so a killed run leaves no half-written video at a destination
path and a re-run skips what the manifest says is done (and still
matches its source and its recorded size). Temporary files of a killed
run (``DST/.prepare_tmp/``) are removed by the next run.
``tools/data/prepare_videos.py`` is the command.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

from ..utils.atomic import atomic_write_text
from .video_io import list_videos

MANIFEST = 'manifest.json'
TMP_DIR = '.prepare_tmp'
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Job:
    """One video: its source, and where (relative to DST) it goes."""
    src: str
    rel: str


@dataclass(frozen=True)
class Settings:
    """How every video is encoded (recorded in the manifest: a re-run with
    other settings redoes everything)."""
    short_side: int = 256
    keyframe_interval: int = 8
    crf: int = 23
    preset: str = 'superfast'
    tune: str = 'fastdecode'  # x264's tune; 'none': x264's default

    def as_dict(self) -> dict:
        return dict(short_side=self.short_side,
                    keyframe_interval=self.keyframe_interval, crf=self.crf,
                    preset=self.preset, tune=self.tune)

    def x264_options(self) -> Dict[str, str]:
        g = str(self.keyframe_interval)
        options = {'preset': self.preset, 'g': g, 'keyint_min': g,
                   'crf': str(self.crf), 'sc_threshold': '0'}
        if self.tune != 'none':
            options['tune'] = self.tune
        return options


def output_rel(rel: str) -> str:
    """The prepared file's path for a source path relative to the root:
    the same path with the extension ``.mp4``."""
    return osp.splitext(rel)[0] + '.mp4'


def _inside(rel: str) -> bool:
    norm = osp.normpath(rel)
    return not (osp.isabs(rel) or norm == '..' or
                norm.startswith('..' + os.sep))


def folder_jobs(src: str) -> List[Job]:
    """Every video under ``src`` (recursively), sorted."""
    return [Job(p, output_rel(osp.relpath(p, src)))
            for p in list_videos(src)]


def read_video_list(path: str) -> List[Tuple[str, str]]:
    """MMAction2's video list (``path/to/video.ext label ...`` per line):
    ``(video path, rest of the line)`` for every non-empty line."""
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            out.append((parts[0], parts[1] if len(parts) > 1 else ''))
    return out


def list_jobs(list_file: str, root: str) -> Tuple[List[Job], Dict[str,
                                                                  str]]:
    """Jobs of the videos a list names (paths relative to ``root``), and
    the ones refused with the reason (a path leaving the root)."""
    jobs, refused = [], {}
    for video, _ in read_video_list(list_file):
        if not _inside(video):
            refused[video] = 'the path leaves the data root'
            continue
        jobs.append(Job(osp.join(root, video), output_rel(video)))
    return jobs, refused


def source_key(path: str) -> dict:
    st = os.stat(path)
    return dict(src_size=st.st_size, src_mtime_ns=st.st_mtime_ns)


def scaled_size(h: int, w: int, short_side: int) -> Tuple[int, int]:
    """(height, width) with the short side ``short_side`` (never larger
    than the source), both even (H.264's 4:2:0 needs it)."""
    scale = min(1.0, short_side / min(h, w))
    return (max(2, int(round(h * scale / 2)) * 2),
            max(2, int(round(w * scale / 2)) * 2))


def count_packets(path: str) -> Tuple[int, List[int]]:
    """(frames, indices of keyframes) of a video file's first video
    stream, from its packets (nothing decoded)."""
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        keys, n = [], 0
        for packet in container.demux(stream):
            if packet.size:
                if packet.is_keyframe:
                    keys.append(n)
                n += 1
    return n, keys


def encode(src: str, dst: str, settings: Settings,
           threads: int = 1) -> dict:
    """Re-encode ``src`` to ``dst`` (H.264 in MP4, no audio). Returns what
    the output is: size in pixels, frames, frame rate, duration, and the
    source's frame count and size."""
    import av
    with av.open(src) as inp:
        if not inp.streams.video:
            raise ValueError('no video stream')
        stream = inp.streams.video[0]
        stream.thread_type = 'AUTO'
        stream.codec_context.thread_count = threads
        h, w = stream.codec_context.height, stream.codec_context.width
        nh, nw = scaled_size(h, w, settings.short_side)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        rate = Fraction(rate).limit_denominator(1001)
        n = 0
        with av.open(dst, 'w', format='mp4') as out:
            ost = out.add_stream('libx264', rate=rate)
            ost.width, ost.height, ost.pix_fmt = nw, nh, 'yuv420p'
            ctx = ost.codec_context
            ctx.gop_size = settings.keyframe_interval
            ctx.thread_count = threads
            ost.options = settings.x264_options()
            for frame in inp.decode(stream):
                small = frame.reformat(width=nw, height=nh,
                                       format='yuv420p')
                small.pts, small.time_base = n, 1 / rate
                for packet in ost.encode(small):
                    out.mux(packet)
                n += 1
            for packet in ost.encode():
                out.mux(packet)
    if n == 0:
        raise ValueError('no frames decoded')
    return dict(width=nw, height=nh, frames=n, fps=float(rate),
                duration=n / float(rate), src_width=w, src_height=h,
                src_frames=n)


def prepare_one(job: Job, dst_root: str, settings: Settings,
                threads: int = 1) -> dict:
    """Encode one job into ``dst_root`` through a temporary file, verify
    it (frame count within one of the source's, keyframe interval), then
    rename it into place. Returns its manifest entry, or
    ``dict(error=...)``."""
    start = time.perf_counter()
    out = osp.join(dst_root, job.rel)
    tmp_dir = osp.join(dst_root, TMP_DIR)
    os.makedirs(tmp_dir, exist_ok=True)
    tag = hashlib.sha1(job.rel.encode()).hexdigest()[:16]
    tmp = osp.join(tmp_dir, f'{tag}.{os.getpid()}.mp4')
    try:
        if not osp.isfile(job.src):
            raise ValueError('no such file')
        key = source_key(job.src)
        info = encode(job.src, tmp, settings, threads)
        frames, keys = count_packets(tmp)
        if abs(frames - info['src_frames']) > 1:
            raise ValueError(f'{frames} frames written for '
                             f"{info['src_frames']} read")
        gaps = [b - a for a, b in zip(keys, keys[1:] + [frames])]
        if not keys or keys[0] != 0 or max(gaps) > \
                settings.keyframe_interval:
            raise ValueError(f'keyframes at {keys[:10]}...: not every '
                             f'{settings.keyframe_interval} frames')
        info['frames'] = frames
        os.makedirs(osp.dirname(out) or '.', exist_ok=True)
        os.replace(tmp, out)
    except Exception as err:  # noqa: BLE001 (PyAV raises many types)
        if osp.exists(tmp):
            os.remove(tmp)
        msg = str(err).strip() or type(err).__name__
        return dict(src=job.src, rel=job.rel, error=msg)
    return dict(src=job.src, rel=job.rel, size=osp.getsize(out),
                seconds=time.perf_counter() - start, **key, **info)


def _prepare_star(args):
    return prepare_one(*args)


def load_manifest(dst_root: str) -> Optional[dict]:
    path = osp.join(dst_root, MANIFEST)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and \
        data.get('version') == MANIFEST_VERSION else None


def is_done(entry: Optional[dict], job: Job, dst_root: str) -> bool:
    """A manifest entry still describes the output and its source."""
    if not entry or 'error' in entry:
        return False
    out = osp.join(dst_root, job.rel)
    try:
        return entry['src'] == job.src and \
            source_key(job.src) == dict(
                src_size=entry['src_size'],
                src_mtime_ns=entry['src_mtime_ns']) and \
            osp.getsize(out) == entry['size']
    except (OSError, KeyError):
        return False


class OutputCollisionError(ValueError):
    """Two or more sources would be prepared to the same output file."""


def check_outputs_apart(jobs: Sequence[Job]) -> None:
    """Raise :class:`OutputCollisionError` listing every output that two
    or more sources map to (``a.mp4`` and ``a.avi`` both become
    ``a.mp4``): one of them would be lost, and a list naming the other
    would point at the wrong video."""
    sources: Dict[str, List[str]] = {}
    for job in jobs:
        srcs = sources.setdefault(job.rel, [])
        if job.src not in srcs:  # a list may name a video twice
            srcs.append(job.src)
    clashes = {rel: srcs for rel, srcs in sources.items() if len(srcs) > 1}
    if clashes:
        shown = '; '.join(f'{rel} <- {", ".join(srcs)}'
                          for rel, srcs in sorted(clashes.items()))
        raise OutputCollisionError(
            f'{len(clashes)} output name(s) shared by several sources '
            f'(each becomes NAME.mp4): {shown}. Rename or move one of each, '
            'or prepare them into different DST folders; nothing was '
            'written')


def prepare_videos(jobs: Sequence[Job], dst_root: str, settings: Settings,
                   workers: int = 1, refused: Optional[Dict[str, str]] = None,
                   progress=None) -> dict:
    """Prepare ``jobs`` into ``dst_root``; returns the manifest (also in
    ``DST/manifest.json``): ``files`` (relative output path -> entry),
    ``failed`` (source -> reason), ``settings``, plus ``done_before`` and
    ``done_now`` (relative paths) for the caller's summary. Sources that
    share an output name are refused before anything is written
    (:func:`check_outputs_apart`).

    ``progress``: called once per finished video (a progress bar).
    """
    check_outputs_apart(jobs)
    unique: Dict[str, Job] = {}
    for job in jobs:  # a video a list names twice: prepared once
        unique.setdefault(job.rel, job)
    jobs = list(unique.values())
    os.makedirs(dst_root, exist_ok=True)
    shutil.rmtree(osp.join(dst_root, TMP_DIR), ignore_errors=True)
    old = load_manifest(dst_root)
    same = old is not None and old.get('settings') == settings.as_dict()
    files = dict(old['files']) if same else {}
    failed = dict(refused or {})
    todo, done_before = [], []
    for job in jobs:
        if is_done(files.get(job.rel), job, dst_root):
            done_before.append(job.rel)
        else:
            files.pop(job.rel, None)
            todo.append(job)
    manifest = dict(version=MANIFEST_VERSION, settings=settings.as_dict(),
                    files=files, failed=failed)

    def save():
        atomic_write_text(osp.join(dst_root, MANIFEST),
                          json.dumps(manifest, indent=1, sort_keys=True))

    save()
    done_now = []
    tasks = [(job, dst_root, settings) for job in todo]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        pool = multiprocessing.get_context('fork').Pool(workers)
        results = pool.imap_unordered(_prepare_star, tasks)
    else:
        pool, results = None, map(_prepare_star, tasks)
    try:
        for res in results:
            if 'error' in res:
                failed[res['src']] = res['error']
            else:
                files[res['rel']] = res
                done_now.append(res['rel'])
                failed.pop(res['src'], None)
            save()
            if progress is not None:
                progress()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    shutil.rmtree(osp.join(dst_root, TMP_DIR), ignore_errors=True)
    return dict(manifest, done_before=done_before, done_now=done_now)


def rewrite_video_list(list_file: str, out_file: str,
                       prepared: Dict[str, dict]) -> Tuple[int, int]:
    """Write ``list_file`` with each video's path replaced by its prepared
    one (``.mp4``), for the lines whose video was prepared; returns
    (lines written, lines left out)."""
    lines, left = [], 0
    for video, rest in read_video_list(list_file):
        rel = output_rel(video)
        if rel not in prepared:
            left += 1
            continue
        lines.append(f'{rel} {rest}'.rstrip() + '\n')
    atomic_write_text(out_file, ''.join(lines))
    return len(lines), left
