"""Random-number state in checkpoints, so a resumed run continues exactly."""
import random

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook


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
