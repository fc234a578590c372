"""Bad annotations stop loading with FILE:LINE (or key) and the problem, in
training and test mode alike; skip_bad_samples never hides them."""
import json
import os.path as osp

import pytest
from conftest import REPO_ROOT, call_main

from stan_mmaction.datasets import (AnnotationError, EmptyCaptionError,
                                    StanVideoDataset,
                                    VideoTextRetrievalDataset)

MODES = [False, True]  # test_mode


def recognition(path, test_mode, num_classes=8, **kwargs):
    return StanVideoDataset(str(path), [], data_prefix=dict(video='root'),
                            num_classes=num_classes, test_mode=test_mode,
                            **kwargs)


@pytest.mark.parametrize('test_mode', MODES)
@pytest.mark.parametrize('lines, where, problem', [
    (['a.mp4 1', 'b.mp4 7', 'c.mp4 99'], 3, 'label 99 of c.mp4 is outside '
     r'\[0, 8\)'),
    (['a.mp4 1', 'b.mp4 -1'], 2, r'label -1 of b.mp4 is outside \[0, 8\)'),
    (['a.mp4 1', 'b.mp4'], 2, "'b.mp4' has no label"),
    (['a.mp4 one'], 1, "label 'one' of a.mp4 is not an integer"),
    (['a.mp4 1', '', 'c.mp4 x'], 3, "label 'x' of c.mp4 is not an integer"),
])
def test_recognition_list_errors_name_file_and_line(tmp_path, test_mode,
                                                    lines, where, problem):
    ann = tmp_path / 'list.txt'
    ann.write_text('\n'.join(lines) + '\n')
    with pytest.raises(AnnotationError, match=f'list.txt:{where}: {problem}'):
        recognition(ann, test_mode)
    # skip_bad_samples is for unreadable videos, not for bad annotations.
    with pytest.raises(AnnotationError, match=f'list.txt:{where}:'):
        recognition(ann, test_mode, skip_bad_samples=True)


def test_recognition_list_spaces_blank_lines_and_lines(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text('my clip.mp4 2\n\n  \nsub/b.mp4 7\n')
    data = recognition(ann, False).load_data_list()
    assert [(d['filename'], d['label'], d['ann_line']) for d in data] == [
        ('root/my clip.mp4', 2, 1), ('root/sub/b.mp4', 7, 4)]
    # Without num_classes only negative labels are refused.
    assert recognition(ann, True, num_classes=None).load_data_list()[1][
        'label'] == 7


def test_non_utf8_files_are_named(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_bytes(b'a.mp4 1\nb\xe9.mp4 2\n')
    with pytest.raises(AnnotationError, match=r'list.txt:2: not UTF-8 text '
                       r'\(byte 0xe9'):
        recognition(ann, False)
    captions = tmp_path / 'captions.json'
    captions.write_bytes(b'{"v\xe9.mp4": ["a caption"]}')
    with pytest.raises(AnnotationError, match='captions.json:1: not UTF-8'):
        VideoTextRetrievalDataset(str(captions), [])


def retrieval(path, test_mode, **kwargs):
    return VideoTextRetrievalDataset(str(path), [], test_mode=test_mode,
                                     data_prefix=dict(video=''), **kwargs)


@pytest.mark.parametrize('test_mode', MODES)
@pytest.mark.parametrize('value, problem', [
    ([], 'v.mp4 has no captions'),
    ({'a': 'b'}, 'captions of v.mp4 must be a string or a list of strings, '
     "got dict {'a': 'b'}"),
    (5, 'captions of v.mp4 must be a string or a list of strings, got int '
     '5'),
    (['fine', 5], 'caption 5 of v.mp4 is a int, not a string'),
    (['fine', None], 'caption None of v.mp4 is a NoneType, not a string'),
])
def test_retrieval_json_errors_name_file_and_line(tmp_path, test_mode,
                                                  value, problem):
    ann = tmp_path / 'captions.json'
    ann.write_text(json.dumps({'ok.mp4': ['a caption'], 'v.mp4': value},
                              indent=1))
    with pytest.raises(AnnotationError) as err:
        retrieval(ann, test_mode)
    # v.mp4 opens on line 5 of the indented JSON.
    assert str(err.value) == f'{ann}:5: {problem}'
    with pytest.raises(AnnotationError):
        retrieval(ann, test_mode, skip_bad_samples=True)


def test_retrieval_non_ascii_names_invalid_json_and_empty_captions(tmp_path):
    ann = tmp_path / 'captions.json'
    ann.write_text(json.dumps({'ok.mp4': ['fine'], 'été.mp4': ['  ']},
                              ensure_ascii=False, indent=1),
                   encoding='utf-8')
    with pytest.raises(EmptyCaptionError, match=r'captions.json:5: empty '
                       r"caption '  ' for video été.mp4"):
        retrieval(ann, False)
    ann.write_text(json.dumps({'ok.mp4': ['fine'], 'été.mp4': []},
                              indent=1))  # ASCII escapes
    with pytest.raises(AnnotationError, match='captions.json:5: '):
        retrieval(ann, True)
    ann.write_text('{"a.mp4": ["x"],\n "b.mp4": ["y"]\n "c.mp4": []}')
    with pytest.raises(AnnotationError, match='captions.json:3: invalid '
                       "JSON: Expecting ',' delimiter"):
        retrieval(ann, False)


@pytest.mark.parametrize('test_mode', MODES)
def test_didemo_and_lsmdc_errors(tmp_path, test_mode):
    ann = tmp_path / 'didemo.json'
    ann.write_text(json.dumps([
        dict(video='a.mov', description='one.'),
        dict(video='b.mov', description=7)], indent=1))
    with pytest.raises(AnnotationError, match=r'didemo.json:7: captions of '
                       'b.mov must be a string or a list of strings, got '
                       'int'):
        retrieval(ann, test_mode, ann_format='didemo')
    ann = tmp_path / 'lsmdc.csv'
    ann.write_text('1001_A_00.01\tx\tA man walks.\n\tx\tNo clip id.\n')
    with pytest.raises(AnnotationError, match='lsmdc.csv:2: expected '
                       'tab-separated'):
        retrieval(ann, test_mode, ann_format='lsmdc')
    ann.write_text('1001_A_00.01\tx\tA man walks.\n'
                   '1001_A_00.02\tx\t   \n')
    with pytest.raises(EmptyCaptionError, match='lsmdc.csv:2: empty '):
        retrieval(ann, test_mode, ann_format='lsmdc')


DEMO_CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


@pytest.mark.slow
def test_test_tool_stops_on_a_label_outside_the_classes(demo_workspace,
                                                        tmp_path):
    """Before: label 99 in a test list exited 0 with a lower accuracy. Now
    one line, exit 1, before the runner is built."""
    root = osp.join(demo_workspace, 'data', 'synthetic')
    lines = open(osp.join(root, 'val_list_videos.txt')).read().splitlines()
    name = lines[1].rsplit(None, 1)[0]
    lines[1] = f'{name} 99'
    bad = tmp_path / 'val_list_videos.txt'
    bad.write_text('\n'.join(lines) + '\n')
    res = call_main('tools/test.py', [
        DEMO_CFG, 'none', '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'test_dataloader.dataset.ann_file={bad}'],
        cwd=demo_workspace)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f'Error: test_dataloader.dataset: {bad}:2: label 99 of {name} is '
        'outside [0, 8)']
    assert not (tmp_path / 'work').exists()


# MMAction2's own list formats, as its tests/data/annotations files hold
# them (video_test_list_multi_label.txt, frame_test_list.txt,
# rawframe_test_list_with_offset.txt, rawframe_test_list_multi_label.txt).
MULTI_LABEL = 'test.mp4 0 3\ntest.mp4 0 2 4\n'
RAWFRAMES = {'frame_test_list.txt': 'imgs 5 127\nimgs 5 127\n',
             'rawframe_test_list_with_offset.txt':
             'imgs 2 5 127\nimgs 2 5 127\n',
             'rawframe_test_list_multi_label.txt': 'imgs 5 1\nimgs 5 3 5\n'}


@pytest.mark.parametrize('test_mode', MODES)
def test_multi_label_list_reads_with_multi_class(tmp_path, test_mode):
    """MMAction2's multi-label video list: one-hot labels of num_classes
    with multi_class=True (as MMAction2's VideoDataset); without it, a
    load-time error naming the format and the setting, not a late
    "file not found" for 'test.mp4 0'."""
    import torch
    from conftest import write_video
    ann = tmp_path / 'video_test_list_multi_label.txt'
    ann.write_text(MULTI_LABEL)
    write_video(str(tmp_path / 'videos' / 'test.mp4'), 32, 32, 8)
    dataset = StanVideoDataset(
        str(ann), [], data_prefix=dict(video=str(tmp_path / 'videos')),
        multi_class=True, num_classes=5, test_mode=test_mode)
    assert len(dataset) == 2
    assert torch.equal(dataset.get_data_info(0)['label'],
                       torch.tensor([1., 0., 0., 1., 0.]))
    assert torch.equal(dataset.get_data_info(1)['label'],
                       torch.tensor([1., 0., 1., 0., 1.]))
    with pytest.raises(AnnotationError, match=(
            r"video_test_list_multi_label.txt:1: 'test.mp4 0 3' looks like "
            r'a multi-label list .*set multi_class=True and num_classes')):
        StanVideoDataset(str(ann), [], data_prefix=dict(
            video=str(tmp_path / 'videos')), test_mode=test_mode)
    # The named file need not exist for the format to be told.
    with pytest.raises(AnnotationError, match='multi-label list'):
        recognition(ann, test_mode)
    with pytest.raises(AnnotationError, match='multi_class=True needs '
                       'num_classes'):
        StanVideoDataset(str(ann), [], multi_class=True,
                         test_mode=test_mode)
    # Labels are still checked against num_classes.
    with pytest.raises(AnnotationError, match=r'label 4 of test.mp4 is '
                       r'outside \[0, 4\)'):
        StanVideoDataset(str(ann), [], multi_class=True, num_classes=4,
                         test_mode=test_mode)


@pytest.mark.parametrize('name', sorted(RAWFRAMES))
def test_rawframe_lists_are_refused_naming_rawframe_dataset(tmp_path, name):
    ann = tmp_path / name
    ann.write_text(RAWFRAMES[name])
    (tmp_path / 'imgs').mkdir()
    first = RAWFRAMES[name].splitlines()[0]
    for prefix in (str(tmp_path), 'elsewhere'):
        with pytest.raises(AnnotationError, match=(
                f'{name}:1: {first!r} looks like a rawframe list .*'
                "RawframeDataset.*RawFrameDecode")):
            StanVideoDataset(str(ann), [], data_prefix=dict(video=prefix),
                             num_classes=400)


def test_paths_with_spaces_and_numbers_still_read(tmp_path):
    """A real file whose name ends in a number is a video, not another
    format."""
    (tmp_path / 'clip 2').write_bytes(b'')  # listing reads no video
    (tmp_path / 'my video 3.mp4').write_bytes(b'')
    ann = tmp_path / 'list.txt'
    ann.write_text('clip 2 5\nmy video 3.mp4 1\n')
    dataset = StanVideoDataset(str(ann), [],
                               data_prefix=dict(video=str(tmp_path)),
                               num_classes=8)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [(osp.basename(d['filename']), d['label']) for d in infos] == [
        ('clip 2', 5), ('my video 3.mp4', 1)]
