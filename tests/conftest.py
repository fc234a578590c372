import atexit
import contextlib
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile


def _own_folder(variable: str, prefix: str, name: str = '') -> None:
    """Point ``variable`` at a new folder of this run's (removed when the
    run ends), unless the caller set it."""
    if variable not in os.environ:
        folder = tempfile.mkdtemp(prefix=prefix)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[variable] = osp.join(folder, name) if name else folder


# torch.compile's caches (compiled kernels, FX graphs) in a folder of this
# run's, not the machine's /tmp/torchinductor_<user>: torch's cache is not
# keyed on ATEN_CPU_CAPABILITY, and kernels cached by a run with AVX2
# forced (an emulation some benchmarks use) made later compiled runs on
# the same machine crash (heap corruption) or return NaN. Set before torch
# is imported: importing stan_mmaction makes inductor fill the variable in
# with its default.
_own_folder('TORCHINDUCTOR_CACHE_DIR', 'stan_inductor_')
# Search indexes are signed with a per-user key (~/.cache by default): the
# tests (and the tools they start) use one of their own.
_own_folder('STAN_MMACTION_INDEX_KEY', 'stan_index_key_', 'index_key')

import pytest  # noqa: E402
import torch  # noqa: E402

import stan_mmaction  # noqa: E402,F401  (applies compat, registers modules)
from stan_mmaction.models import build_clip  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def subprocess_env(env_extra: dict = None) -> dict:
    """This environment with the repo on PYTHONPATH, this interpreter as
    $PYTHON (for the shell tools), plus ``env_extra``."""
    env = dict(os.environ, PYTHON=sys.executable)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.update(env_extra or {})
    return env


def readme_block(marker: str) -> str:
    """The first fenced code block after the README line ``<!-- tested
    verbatim: MARKER -->`` (the test that runs it names itself)."""
    with open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    tag = f'<!-- tested verbatim: {marker} -->'
    assert tag in text, tag
    after = text.split(tag, 1)[1]
    body = after.split('```', 2)[1]
    return body.split('\n', 1)[1]  # without the ```python line


def run_python(code: str, env_extra: dict = None, timeout: int = 300):
    """Run ``python -c code`` in a fresh interpreter from the repo root."""
    return subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          env=subprocess_env(env_extra), capture_output=True,
                          text=True, timeout=timeout)


_FORKED_RUNNER = r'''
import json, os, sys, tempfile, traceback
cases = json.loads(sys.stdin.read())
for name in PRELOAD:
    __import__(name)
results = {}
for key, code in cases.items():
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        status = 0
        try:
            exec(compile(code, '<string>', 'exec'), {'__name__': '__main__'})
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    _, wait = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    results[key] = dict(returncode=os.waitstatus_to_exitcode(wait),
                        stdout=out.read().decode(errors='replace'),
                        stderr=err.read().decode(errors='replace'))
print(json.dumps(results))
'''


def run_python_forked(cases: dict, env_extra: dict = None,
                      preload=('torch', 'numpy', 'mmengine.config',
                               'mmengine.runner'), timeout: int = 300):
    """``run_python`` of each ``{name: code}``, in one fresh interpreter:
    it imports ``preload`` once, then runs each code in a child forked
    from it (a state of its own, as a fresh interpreter's). Returns
    ``{name: ToolResult}``."""
    import json
    runner = _FORKED_RUNNER.replace('PRELOAD', repr(list(preload)))
    proc = subprocess.run([sys.executable, '-c', runner],
                          input=json.dumps(cases), cwd=REPO_ROOT,
                          env=subprocess_env(env_extra), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: ToolResult(r['returncode'], r['stdout'], r['stderr'])
            for name, r in results.items()}


def run_tool(args, timeout: int = 600, env_extra: dict = None,
             cwd: str = REPO_ROOT):
    """Run ``python tools/<args>`` (or a shell script), by default from the
    repo root."""
    if args[0].endswith('.sh'):
        cmd = ['bash', osp.join(REPO_ROOT, 'tools', args[0]), *args[1:]]
    else:
        cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', args[0]),
               *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(env_extra),
                          capture_output=True, text=True, timeout=timeout)


def load_script(relpath: str):
    """Import a script of the repo (``tools/search.py``, ``demo/demo.py``)
    as a module, to call its ``main(argv)`` in this process (a tool run in
    a subprocess pays ~10 s of imports on these machines)."""
    import importlib.util
    tools = osp.join(REPO_ROOT, 'tools')
    if tools not in sys.path:
        sys.path.insert(0, tools)
    path = osp.join(REPO_ROOT, relpath)
    name = 'script_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ToolResult:
    """What :func:`call_main` saw: ``returncode``, ``stdout``, ``stderr``
    (as a ``subprocess.run`` result has them)."""

    def __init__(self, returncode, stdout, stderr, value=None):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.value = value


_SCRIPTS = {}


def _manager_classes():
    """MMEngine's global-instance classes (loggers, message hubs,
    visualizers, default scopes), each with its own instance table."""
    from mmengine.utils import ManagerMixin
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if '_instance_dict' in vars(c)]


@contextlib.contextmanager
def process_state_kept():
    """What a tool run changes in its process, restored afterwards, so
    that tools run in the test process leave it as a subprocess would:
    torch's thread count and determinism flags, the working directory,
    and MMEngine's named global instances the run made (a later run with
    the same timestamped name would get the old logger, writing to the
    old output)."""
    import logging
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)
    cwd = os.getcwd()
    before = {cls: set(cls._instance_dict) for cls in _manager_classes()}
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0],
                                           warn_only=deterministic[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic \
            = cudnn
        for cls in _manager_classes():
            for name in set(cls._instance_dict) - before.get(cls, set()):
                instance = cls._instance_dict.pop(name)
                if isinstance(instance, logging.Logger):
                    for handler in list(instance.handlers):
                        handler.close()
                        instance.removeHandler(handler)


def _run_captured(fn, cwd: str = None) -> ToolResult:
    """``fn()`` with stdout and stderr captured (MMEngine's log too: its
    logger is made inside), from ``cwd`` if given, what it changes in the
    process restored (:func:`process_state_kept`); ``SystemExit`` becomes
    the return code (a message: 1, written to stderr), as in a
    subprocess."""
    import io
    out, err = io.StringIO(), io.StringIO()
    code, value = 0, None
    with process_state_kept(), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        if cwd is not None:
            os.chdir(cwd)
        try:
            value = fn()
        except SystemExit as exc:
            if isinstance(exc.code, str):
                err.write(exc.code + '\n')
                code = 1
            else:
                code = exc.code or 0
    return ToolResult(code, out.getvalue(), err.getvalue(), value)


def call_main(relpath: str, argv, cwd: str = None) -> ToolResult:
    """Run ``main(argv)`` of a script (``tools/search.py``) in this
    process, as :func:`_run_captured` runs it."""
    if relpath not in _SCRIPTS:
        _SCRIPTS[relpath] = load_script(relpath)
    return _run_captured(lambda: _SCRIPTS[relpath].main(list(argv)), cwd)


def run_script(path: str, argv, cwd: str = None) -> ToolResult:
    """Run a script with no ``main(argv)`` (MMAction2's tools) in this
    process as ``python path argv...`` would (``sys.argv`` set, run as
    ``__main__``), as :func:`_run_captured` runs it."""
    import runpy
    import sys as _sys

    def run():
        argv_before = _sys.argv
        _sys.argv = [path, *argv]
        try:
            runpy.run_path(path, run_name='__main__')
        finally:
            _sys.argv = argv_before

    return _run_captured(run, cwd)


def save_random_checkpoint(config, path, seed=0):
    """Build ``config`` with seed ``seed`` and save its weights as a runner
    checkpoint at ``path``; returns the model."""
    from stan_mmaction.apis import init_model
    torch.manual_seed(seed)
    model = init_model(config)
    torch.save({'state_dict': model.state_dict()}, path)
    return model


def tiny_recognizer(frozen_stages=-1, seed=0, **backbone):
    """MMAction2's Recognizer3D over the tiny CLIP with 2 STAN layers (the
    demo's model: no drop path or dropout), seeded; ``backbone`` overrides
    ``StanCLIPBackbone`` arguments."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    torch.manual_seed(seed)
    return MODELS.build(dict(
        type='Recognizer3D',
        backbone=dict(type='StanCLIPBackbone', arch='tiny',
                      num_stan_layers=2, pretrained=None,
                      frozen_stages=frozen_stages, drop_path_rate=0.,
                      **backbone),
        cls_head=dict(type='TimeSformerHead', num_classes=8, in_channels=32,
                      dropout_ratio=0., init_std=0.2)))


def start_until_file(cmd, path, cwd, env_extra=None, timeout=300):
    """Start ``cmd`` (output discarded) and return its ``Popen`` once
    ``path`` exists (for killing a run at a known point); fails if the
    process ends first or ``timeout`` seconds pass."""
    import time
    proc = subprocess.Popen(cmd, cwd=cwd, env=subprocess_env(env_extra),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    return proc


def write_videos(folder, labels, frames=16, size=32, seed=0):
    """Synthetic MP4s of the given class indices in ``folder`` (a Path)."""
    import numpy as np

    from stan_mmaction.datasets import (SYNTHETIC_CLASSES, render_video,
                                        write_mp4)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(labels):
        path = str(folder / f'{SYNTHETIC_CLASSES[label]}_{i}.mp4')
        write_mp4(path, render_video(label, rng, frames, size))
        paths.append(path)
    return paths


@pytest.fixture(scope='session')
def tiny_clip_file(tmp_path_factory):
    """A randomly initialised tiny open_clip CLIP saved as a state dict.

    Returns (path, model) with the model in eval mode.
    """
    torch.manual_seed(1234)
    model = build_clip('tiny').eval()
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    return str(path), model


#: The demo config and how the session's one tiny training run trains it.
DEMO_CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')
TINY_TRAINING = [
    '--seed', '0', '--deterministic', '--cfg-options',
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=10',
    'train_dataloader.batch_size=4',
    'default_hooks.checkpoint.max_keep_ckpts=-1']


@pytest.fixture(scope='session')
def tiny_trained(tmp_path_factory, demo_workspace):
    """The demo config trained once for the session with ``tools/train.py``
    (in this process): 2 epochs of 4 iterations (16 videos, batches of 4),
    seed 0, deterministic. Returns the work dir (``epoch_1.pth``,
    ``epoch_2.pth``, ``last_checkpoint``, the log). Tests that write there
    copy it first (:func:`copy_work_dir`)."""
    work = str(tmp_path_factory.mktemp('tiny_trained') / 'work')
    res = call_main('tools/train.py', [DEMO_CFG, '--work-dir', work,
                                       *TINY_TRAINING], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def copy_work_dir(work: str, dest) -> str:
    """A copy of a work dir whose ``last_checkpoint`` names the copy's
    own checkpoint."""
    import shutil
    dest = str(dest)
    shutil.copytree(work, dest)
    last = osp.join(dest, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            name = osp.basename(f.read().strip())
        with open(last, 'w') as f:
            f.write(osp.join(dest, name))
    return dest


@pytest.fixture(scope='session')
def demo_workspace(tmp_path_factory):
    """A folder holding ``data/synthetic`` (2 train / 1 val video per
    class), the ``data_root`` of configs/demo; run tools from it."""
    from stan_mmaction.datasets import make_synthetic_dataset
    root = tmp_path_factory.mktemp('workspace')
    make_synthetic_dataset(str(root / 'data' / 'synthetic'),
                           dict(train=2, val=1), seed=0)
    return str(root)


def write_video(path, w, h, frames, fourcc='mp4v', seed=0):
    """An MP4 (or AVI with ``fourcc='MJPG'``) of smooth moving random
    content, written with OpenCV at 25 fps; returns the path."""
    import cv2
    import numpy as np
    os.makedirs(osp.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 25,
                             (w, h))
    assert writer.isOpened(), path
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (max(2, h // 8), max(2, w // 8), 3),
                        np.uint8)
    for t in range(frames):
        writer.write(cv2.resize(np.roll(base, t, 1), (w, h)))
    writer.release()
    return path


#: transformers beside our stack, for the tests that need it (install
#: tests: `make test` puts it in .venv/transformers-<version> from the
#: package registry once; without it, into a temporary folder). Put first
#: on PYTHONPATH of fresh interpreters only.
TRANSFORMERS_VERSION = '4.57.6'


@pytest.fixture(scope='session')
def transformers_dir(tmp_path_factory):
    cached = osp.join(REPO_ROOT, '.venv',
                      f'transformers-{TRANSFORMERS_VERSION}')
    if osp.isfile(osp.join(cached, '.complete')):
        return cached
    target = str(tmp_path_factory.mktemp('transformers'))
    res = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                          '--target', target,
                          f'transformers=={TRANSFORMERS_VERSION}'],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    return target


#: imgaug beside our stack (MMAction2's ImgAug transform wraps it), for
#: its install test: `make test` puts it in .venv/imgaug-0.4.0 once
#: (requirements/imgaug.txt, --no-deps); without it, into a temporary
#: folder. On PYTHONPATH of fresh interpreters only.
@pytest.fixture(scope='session')
def imgaug_dir(tmp_path_factory):
    cached = osp.join(REPO_ROOT, '.venv', 'imgaug-0.4.0')
    if osp.isfile(osp.join(cached, '.complete')):
        return cached
    target = str(tmp_path_factory.mktemp('imgaug'))
    res = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                          '--no-deps', '--target', target, '-r',
                          osp.join(REPO_ROOT, 'requirements', 'imgaug.txt')],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    return target
