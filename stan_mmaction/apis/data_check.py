"""The data a run reads, checked before its runner is built: every
dataset of the loaders the run uses is built and its annotations read
(files exist, are readable, are in the dataset's format), so that a
missing list file or a bad line ends the run in one line naming the
loader, the file and the line, before the environment and config dump
and before any model is built (it came after ~400 lines, under a 40-55
line traceback)."""
import copy

#: The loaders a tool's run reads.
RUN_LOADERS = dict(train=('train_dataloader', 'val_dataloader'),
                   test=('test_dataloader', ))


class DataCheckError(ValueError):
    """A dataset of the run cannot be read; names the loader."""


def check_datasets(cfg, run: str) -> int:
    """Build and fully load each dataset of ``run`` (``'train'``: the
    training and, when validating, the validation loader; ``'test'``: the
    test loader) as the runner will; returns how many were checked.

    Raises:
        DataCheckError: ``'{loader}.dataset: {problem}'``, the problem as
            the dataset's reader names it (``FILE:LINE: ...``, or a file
            that cannot be opened).
    """
    from mmaction.registry import DATASETS
    from mmengine.registry import init_default_scope

    from ..datasets import AnnotationError
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    checked = 0
    for loader in RUN_LOADERS[run]:
        if loader == 'val_dataloader' and not cfg.get('val_cfg'):
            continue
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not dataset:
            continue
        try:
            built = DATASETS.build(copy.deepcopy(dataset))
            if hasattr(built, 'full_init'):
                built.full_init()
        except AnnotationError as err:
            raise DataCheckError(f'{loader}.dataset: {err}') from err
        except OSError as err:
            where = f'{err.filename}: ' if err.filename else ''
            raise DataCheckError(f'{loader}.dataset: {where}'
                                 f'{err.strerror or err}') from err
        checked += 1
    return checked
