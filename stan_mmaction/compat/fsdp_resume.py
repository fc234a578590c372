"""Repair 12: fsdp_resume.

Breakage: mmengine's ``FSDPStrategy`` calls ``optim_state_dict_to_load`` in
torch < 2.1's argument order (FSDP resume fails). -> :func:`patch_fsdp_resume`

Detected by: torch's ``optim_state_dict_to_load`` takes ``(model, optim,
optim_state_dict)`` while ``FSDPStrategy.load_optim_state_dict``'s source
passes ``state_dict, self.model`` (warns when neither order is found).

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_fsdp_optimizer_state_loads_with_torchs_argument_order.
"""


def _fsdp_load_optim_state_dict(self, state_dict: dict) -> None:
    """``FSDPStrategy.load_optim_state_dict`` with torch's argument names:
    the saved optimizer state (full or local, as the strategy saved it)
    converted for this rank's optimizer, then loaded."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
        model=self.model, optim=self.optim_wrapper.optimizer,
        optim_state_dict=state_dict)
    self.optim_wrapper.load_state_dict(optim_state_dict)


def patch_fsdp_resume() -> bool:
    import inspect
    try:
        from mmengine._strategy.fsdp import FSDPStrategy
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return False
    if FSDPStrategy.load_optim_state_dict is _fsdp_load_optim_state_dict:
        return False
    params = list(inspect.signature(
        FullyShardedDataParallel.optim_state_dict_to_load).parameters)
    source = inspect.getsource(FSDPStrategy.load_optim_state_dict)
    if params[:3] != ['model', 'optim', 'optim_state_dict']:
        return False  # a torch with the old order: mmengine's call fits
    if 'state_dict, self.model' not in source:
        if 'model=self.model' in source or \
                'optim_state_dict=state_dict' in source:
            return False  # mmengine passes torch's keywords: fixed
        from . import undecided
        return undecided('fsdp_resume', 'FSDPStrategy.load_optim_state_dict')
    _fsdp_load_optim_state_dict.__wrapped__ = \
        FSDPStrategy.load_optim_state_dict
    FSDPStrategy.load_optim_state_dict = _fsdp_load_optim_state_dict
    return True
