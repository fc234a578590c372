"""tools/synthetic_demo.py's progress lines, read from the scalars MMEngine
writes (the demo itself runs in `make demo`; its training and testing go
through tools/train.py and tools/test.py, tested elsewhere)."""
import json
import os
import sys
import time

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'tools'))
import synthetic_demo  # noqa: E402


def write_scalars(work, stamp, records):
    folder = os.path.join(work, stamp, 'vis_data')
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'scalars.json')
    with open(path, 'w') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')
    return path


def test_epoch_summaries_and_progress_lines(tmp_path, capsys):
    work = str(tmp_path / 'stan')
    old = write_scalars(work, '20260101_000000', [
        dict(loss=9.0, epoch=1, iter=10, step=10, top1_acc=0.0)])
    os.utime(old, (1, 1))  # an earlier run: ignored
    records = [
        dict(lr=1e-3, loss=2.0, epoch=1, iter=10, step=10, top1_acc=0.25),
        dict(lr=1e-3, loss=1.5, epoch=1, iter=20, step=20, top1_acc=0.75),
        dict(lr=1e-3, loss=1.0, epoch=2, iter=30, step=30, top1_acc=1.0),
        {'acc/top1': 0.875, 'acc/mean1': 0.875, 'step': 2},
    ]
    write_scalars(work, '20260102_000000', records[:3])
    since = time.time() - 60
    epochs = synthetic_demo.epoch_summaries(work, since)
    assert sorted(epochs) == [1, 2]
    assert epochs[1]['loss'] == 1.5 and epochs[1]['acc'] == [0.25, 0.75]
    column = ('held-out top-1', 'acc/top1', 100)
    assert synthetic_demo.progress_line('STAN', 1, 20, epochs[1], column) \
        == '  [STAN] epoch 1/20  loss 1.500  train top-1 50.0%'

    reporter = synthetic_demo.ProgressReporter([('STAN', work)],
                                               {'STAN': 2}, column)
    reporter.since = since
    reporter.poll()  # epoch 2 has started: epoch 1 is complete
    assert capsys.readouterr().out.splitlines() == [
        '  [STAN] epoch 1/2  loss 1.500  train top-1 50.0%']
    write_scalars(work, '20260102_000000', records)
    reporter.finish('STAN')
    reporter.poll()
    reporter.poll()  # nothing printed twice
    assert capsys.readouterr().out.splitlines() == [
        '  [STAN] epoch 2/2  loss 1.000  train top-1 100.0%  '
        'held-out top-1 87.5%']
