"""Repair 9: fsdp_cpu_optim_state.

Breakage: torch's FSDP copies nothing out of its optimizer-state gather buffer
on CPU processes. -> :func:`patch_fsdp_cpu_optim_state`

Detected by: the source of torch's ``_unflatten_orig_param_states`` copies with
``value.cpu()`` under ``elif not cpu_offload`` (warns when the function is
found but its text is not).

Fixed upstream: not in a release yet (latest checked: torch 2.14).

Test: test_fsdp_full_optimizer_state_copies_out_of_the_gather_buffer.
"""

_UNFLATTEN_ORIG_PARAM_STATES = []


def _unflatten_orig_param_states_cpu(fsdp_param_info, output_states,
                                     state_name, shard_state, to_save,
                                     cpu_offload):
    """torch's ``_unflatten_orig_param_states``, then a copy of each state
    out of the reused gather buffer when ``.cpu()`` did not copy."""
    _UNFLATTEN_ORIG_PARAM_STATES[0](fsdp_param_info, output_states,
                                    state_name, shard_state, to_save,
                                    cpu_offload)
    if not (to_save and cpu_offload and not shard_state):
        return
    if fsdp_param_info.state.compute_device.type != 'cpu':
        return
    for gathered_state in output_states.values():
        value = gathered_state.get(state_name)
        if hasattr(value, 'clone'):
            gathered_state[state_name] = value.clone()


def patch_fsdp_cpu_optim_state() -> bool:
    import inspect
    try:
        from torch.distributed.fsdp import _optim_utils
    except ImportError:
        return False
    current = getattr(_optim_utils, '_unflatten_orig_param_states', None)
    if current is None or current is _unflatten_orig_param_states_cpu:
        return False
    source = inspect.getsource(current)
    if 'value.cpu()' not in source or 'elif not cpu_offload' not in source:
        if '.clone()' in source:
            return False  # torch copies in every case: nothing to repair
        from . import undecided
        return undecided('fsdp_cpu_optim_state',
                         "torch's _unflatten_orig_param_states")
    _UNFLATTEN_ORIG_PARAM_STATES[:] = [current]
    _optim_utils._unflatten_orig_param_states = \
        _unflatten_orig_param_states_cpu
    return True
