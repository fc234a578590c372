"""Hooks of our configs: checkpoints whose ``last_checkpoint`` is never
half written, RNG states in checkpoints (exact resume), the QB-Norm query
bank, inference precision, and ending distributed runs together."""
import atexit
import os.path as osp
import random

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook

from ..evaluation import metric_rule
from ..utils.atomic import atomic_write_text, remove_stale_temps


@HOOKS.register_module()
class StanCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` that removes an old checkpoint only
    after the new one and ``last_checkpoint`` are written (MMEngine removes
    it first), removes the temporary files a killed save left, and writes
    ``last_checkpoint`` (the name ``--resume`` reads) atomically: MMEngine
    rewrites it in place, so a run killed in that moment leaves it empty
    or cut off. Here the new
    name goes to a temporary file renamed over the old one: a reader sees
    the previous checkpoint's name or the new one. Arguments as
    ``CheckpointHook``; selected by ``default_hooks.checkpoint.type`` in
    ``configs/_base_/default_runtime.py``. (The checkpoint files
    themselves are written atomically by compat repair 6, for every
    writer.)

    ``save_best='auto'`` (or a metric without a ``rule``) also knows the
    keys of our evaluators: recalls of ``VideoTextRetrievalMetric`` are
    better higher, its median and mean ranks lower
    (:func:`~stan_mmaction.evaluation.metric_rule`); MMEngine infers rules
    from ``acc``, ``top``, ``loss`` and the like only, and raises at the
    first validation for ``retrieval/t2v_R1``."""

    def _init_rule(self, rules, key_indicators) -> None:
        if len(rules) == 1:
            rules = rules * len(key_indicators)
        rules = [metric_rule(key) if rule is None and key != 'auto' else rule
                 for rule, key in zip(rules, key_indicators)]
        super()._init_rule(rules, key_indicators)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process() and osp.isdir(str(self.out_dir)):
            # What a run killed while saving left (atomic writes' temps).
            removed = remove_stale_temps(str(self.out_dir))
            if removed:
                runner.logger.info(
                    f'Removed {len(removed)} temporary file(s) of a run '
                    f'killed while saving: {", ".join(removed)}')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # The oldest kept checkpoint goes only after the new one and
        # last_checkpoint are complete on disk: MMEngine removes it first,
        # so with max_keep_ckpts=1 a kill during the save left no
        # checkpoint and a last_checkpoint naming a deleted file.
        stale = None
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            # (The best checkpoint may save the same step twice.)
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        # Sharded strategies save on every rank; the name is written once.
        if is_main_process():
            self.write_last_checkpoint(runner.work_dir, self.last_ckpt)
        if stale is not None:
            self._remove_checkpoint(stale)

    def _remove_checkpoint(self, step) -> None:
        if not is_main_process():
            return
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed saves folders
            self.file_backend.rmtree(path)

    @staticmethod
    def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
        """Write ``work_dir/last_checkpoint`` naming ``checkpoint``,
        atomically."""
        atomic_write_text(osp.join(work_dir, 'last_checkpoint'), checkpoint)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the Python, NumPy and torch RNG states with every checkpoint and
    restore them on resume.

    MMEngine re-seeds at start-up but does not store RNG states, so a run
    resumed at epoch k draws different augmentations (and dropout masks)
    than the uninterrupted run did from epoch k on. With this hook, a run
    killed and resumed with ``--resume auto`` in deterministic mode ends
    with the same weights and metrics as one that never stopped (with
    ``num_workers=0``; data workers are re-seeded by MMEngine per epoch).
    """

    priority = 'VERY_LOW'
    KEY = 'rng_state'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(python=random.getstate(), numpy=np.random.get_state(),
                     torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[self.KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(self.KEY)
        if state is None:
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])


def _finish_distributed() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@HOOKS.register_module()
class DistributedTeardownHook(Hook):
    """Distributed processes that finished a run end together: at exit,
    every rank waits for the others, then destroys its process group.

    MMEngine never destroys the group. A rank that left while another
    still had gloo work in flight aborted that one at exit now and then
    ("terminate called without an active exception", SIGABRT, after
    training and checkpoints had finished): 2 of 5 two-process FSDP runs
    of the tiny config; none of 38 with the barrier and destruction (18
    through this hook, with our launcher and MMAction2's). Only
    a run that ended (``after_run``) registers the exit step, so a crashed
    rank never waits for the others; another run in the same process is
    unaffected (the group lives until exit).
    """

    priority = 'LOWEST'

    def after_run(self, runner) -> None:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            atexit.unregister(_finish_distributed)
            atexit.register(_finish_distributed)


@HOOKS.register_module()
class QueryBankHook(Hook):
    """Embed the captions of an annotation file (the training set's) with
    the model under test and hand them, as QB-Norm's query bank, to every
    ``VideoTextRetrievalMetric`` with ``qb_norm`` set, before each test and
    validation run.

    Args:
        ann_file (str): the annotation file whose captions form the bank.
        ann_format (str): its format (``'json'``, ``'didemo'``,
            ``'lsmdc'``), as ``VideoTextRetrievalDataset``.
        context_length (int): tokens per caption (the test pipeline's).
            Defaults to 32.
        batch_size (int): captions per text-tower batch. Defaults to 256.
    """

    priority = 'NORMAL'

    def __init__(self, ann_file: str, ann_format: str = 'json',
                 context_length: int = 32, batch_size: int = 256):
        self.ann_file = ann_file
        self.ann_format = ann_format
        self.context_length = context_length
        self.batch_size = batch_size

    def captions(self) -> list:
        from ..datasets import VideoTextRetrievalDataset

        # lazy_init: parse the file once, here (building would parse it
        # too, then serialise what it read).
        data = VideoTextRetrievalDataset(
            self.ann_file, [], ann_format=self.ann_format,
            data_prefix=dict(video=''), test_mode=True,
            lazy_init=True).load_data_list()
        return [c for info in data for c in info['text']]

    @torch.no_grad()
    def embed(self, model, captions: list) -> torch.Tensor:
        from mmengine.model import is_model_wrapper

        from ..utils.tokenizer import tokenize
        if is_model_wrapper(model):
            model = model.module
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = []
        for s in range(0, len(captions), self.batch_size):
            tokens = tokenize(captions[s:s + self.batch_size],
                              self.context_length).to(device)
            out.append(model.encode_text(tokens).float().cpu())
        model.train(was_training)
        return torch.cat(out)

    def _fill(self, runner, evaluator) -> None:
        from mmengine.logging import MMLogger
        metrics = [m for m in getattr(evaluator, 'metrics', [])
                   if getattr(m, 'qb_norm', None) is not None]
        if not metrics:
            return
        captions = self.captions()
        bank = self.embed(runner.model, captions)
        MMLogger.get_current_instance().info(
            f'QB-Norm query bank: {len(captions)} captions of '
            f'{self.ann_file}')
        for metric in metrics:
            metric.query_bank = bank

    def before_test(self, runner) -> None:
        self._fill(runner, runner.test_evaluator)

    def before_val_epoch(self, runner) -> None:
        self._fill(runner, runner.val_evaluator)


@HOOKS.register_module()
class InferencePrecisionHook(Hook):
    """Test (and validate) in another precision, or compiled: before the
    test loop (after the checkpoint is loaded) the model is cast to
    ``dtype`` (``auto``, ``fp32``, ``bf16``, ``fp16``; see
    :mod:`stan_mmaction.utils.precision`: cast, not autocast; inputs cast on
    the way in, outputs back to fp32 for the metrics) and, with
    ``compile=True``, its backbone is compiled. The first batch's time
    (compilation included) is logged apart. ``tools/test.py --dtype
    --compile`` adds this hook.
    """
    priority = 'VERY_HIGH'

    def __init__(self, dtype: str = 'auto', compile: bool = False):
        from ..utils.precision import DTYPE_CHOICES
        if dtype not in DTYPE_CHOICES:
            raise ValueError(f'InferencePrecisionHook: dtype {dtype!r}, use '
                             f'one of {", ".join(DTYPE_CHOICES)}')
        self.dtype, self.compile = dtype, bool(compile)
        self._first = None
        self._compiled = None  # the model this hook compiled

    def _prepare(self, runner) -> None:
        from mmengine.model import is_model_wrapper

        from ..utils.precision import cast_model, compile_model, resolve_dtype
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        device = next(model.parameters()).device
        dtype = resolve_dtype(self.dtype, device)
        cast_model(model, dtype)
        if self.compile and self._compiled is not model:
            compile_model(model)
            self._compiled = model
        compiled = ' with the backbone compiled' if self.compile else ''
        runner.logger.info(f'Testing in {dtype}{compiled} (requested: '
                           f'{self.dtype})')
        self._first = True

    def before_test(self, runner) -> None:
        self._prepare(runner)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._first:
            import time
            self._start = time.perf_counter()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if self._first:
            import time
            self._first = False
            runner.logger.info(
                f'first test batch: {time.perf_counter() - self._start:.2f} '
                's' + (' (compilation included)' if self.compile else ''))
