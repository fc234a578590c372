"""The docs name what exists: every module the plugin registers is in the
architecture page's registry table, every config, tool and page path the
docs name is in the repository, every relative link resolves, and the
README stays short (the rest lives under docs/)."""
import glob
import itertools
import os.path as osp
import re

import pytest
from conftest import REPO_ROOT

DOCS = sorted(
    [osp.join(REPO_ROOT, 'README.md')] +
    glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.md'), recursive=True))

# configs/..., tools/..., demo/..., docs/... file paths named in the text
# (in code spans, commands and prose); `{a,b}` alternatives are expanded.
PATH = re.compile(r'(?<![\w./-])((?:configs|tools|demo|docs)/'
                  r'[\w./{},-]*\.(?:py|sh|md|yml|png|json))')
LINK = re.compile(r'\]\(([^)\s]+)\)')


def _expand(path):
    parts = re.split(r'\{([^{}]*)\}', path)
    fixed, alternatives = parts[0::2], [p.split(',') for p in parts[1::2]]
    for choice in itertools.product(*alternatives):
        yield ''.join(
            f + c for f, c in itertools.zip_longest(fixed, choice,
                                                    fillvalue=''))


def _changelog():
    """(old, new) rows of the config path changelog in configs/README.md."""
    text = open(osp.join(REPO_ROOT, 'configs', 'README.md'),
                encoding='utf-8').read()
    return re.findall(r'^\| `(configs/[^`]+)` \| \[`(configs/[^`]+)`\]',
                      text, re.M)


def _rel(doc):
    return osp.relpath(doc, REPO_ROOT)


@pytest.mark.parametrize('doc', DOCS, ids=_rel)
def test_paths_named_in_the_docs_exist(doc):
    text = open(doc, encoding='utf-8').read()
    missing = []
    old_paths = {old for old, _ in _changelog()}
    for match in PATH.finditer(text):
        named = match.group(1)
        if text[:match.start()].endswith(']('):
            continue  # a link: checked below, relative to the page
        if named in old_paths and doc.endswith('configs/README.md'):
            continue  # the changelog's old column
        if '...' in named:
            continue  # an elided name (stan-attn_...py)
        before = text[:match.start()]
        if before.endswith(('::', 'config-path ')) or re.search(
                r'stan-mmaction\s+[\w-]+\s+$', before):
            named = 'configs/' + named  # a config scope or shipped name
        for path in _expand(named):
            # Paths are written from the repository root (commands) ...
            if not osp.exists(osp.join(REPO_ROOT, path)):
                missing.append(path)
    for match in LINK.finditer(text):
        target = match.group(1).split('#')[0]
        if not target or re.match(r'[a-z]+:', target):
            continue
        # ... links relative to the page.
        if not osp.exists(osp.join(osp.dirname(doc), target)):
            missing.append(f'link {target}')
    assert not missing, f'{_rel(doc)} names what does not exist: {missing}'


def test_config_changelog_maps_every_moved_config_once():
    rows = _changelog()
    assert len(rows) == 21
    from mmengine.config import Config
    aliases = []
    for old, new in rows:
        assert osp.isfile(osp.join(REPO_ROOT, new)), new
        if osp.exists(osp.join(REPO_ROOT, old)):
            # Back as a short name: the new config, inherited unchanged.
            (base, ) = Config._get_base_files(osp.join(REPO_ROOT, old))
            assert osp.join('configs', base) == new, old
            aliases.append(old)
    assert aliases == ['configs/stan_vitb16_k400.py',
                       'configs/stan_vitb16_ssv2.py',
                       'configs/stan_vitb32_msrvtt.py']
    news = [new for _, new in rows]
    assert len(set(news)) == len(news)
    leaves = {osp.relpath(p, REPO_ROOT) for sub in ('recognition', 'retrieval')
              for p in glob.glob(osp.join(REPO_ROOT, 'configs', sub, 'stan',
                                          '*.py'))}
    # Every config was moved (0.2.0) or added since, once.
    text = open(osp.join(REPO_ROOT, 'configs', 'README.md'),
                encoding='utf-8').read()
    added = re.findall(r'^\| \[`(configs/[^`]+)`\]', text, re.M)
    assert len(added) == 7 and not set(added) & set(news)
    assert set(news) | set(added) == leaves


def test_the_path_pattern_sees_commands_and_alternatives():
    text = ('run `python tools/train.py configs/recognition/stan/'
            'stan-conv_vit-base-p16-res224-clip-pre_1x1x8_{k400,sthv2}'
            '-rgb.py` then see docs/recipes.md.')
    named = [p for m in PATH.finditer(text) for p in _expand(m.group(1))]
    assert named == [
        'tools/train.py',
        'configs/recognition/stan/stan-conv_vit-base-p16-res224-clip-pre_'
        '1x1x8_k400-rgb.py',
        'configs/recognition/stan/stan-conv_vit-base-p16-res224-clip-pre_'
        '1x1x8_sthv2-rgb.py', 'docs/recipes.md']
    assert not all(osp.exists(osp.join(REPO_ROOT, p))
                   for p in _expand('configs/{demo,nowhere}/README.md'))


def _our_registrations():
    """(registry name, module name) for every class or function the plugin
    put into a registry, found by walking MMAction2's and MMEngine's
    registries and their children."""
    import mmaction.registry as mmaction_registry
    import mmengine.registry as mmengine_registry
    from mmengine.registry import Registry

    import stan_mmaction  # noqa: F401 (registers)
    seen, found = set(), set()
    stack = [r for mod in (mmaction_registry, mmengine_registry)
             for r in vars(mod).values() if isinstance(r, Registry)]
    while stack:
        registry = stack.pop()
        if id(registry) in seen:
            continue
        seen.add(id(registry))
        stack.extend(registry.children.values())
        for name, obj in registry.module_dict.items():
            if getattr(obj, '__module__', '').startswith('stan_mmaction'):
                found.add((registry.name, name))
    return found


def test_every_registered_module_is_in_the_architecture_registry_table():
    text = open(osp.join(REPO_ROOT, 'docs', 'architecture.md'),
                encoding='utf-8').read()
    table = text.split('## Registry entry points', 1)[1].split('\n## ')[0]
    rows = [line for line in table.splitlines() if line.startswith('| `')]
    listed = set()
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        listed |= set(re.findall(r'`(\w+)`', cells[1]))
    registered = _our_registrations()
    assert len(registered) >= 15  # the walk found the plugin's modules
    missing = sorted(name for _, name in registered if name not in listed)
    assert not missing, f'not in docs/architecture.md: {missing}'


def test_readme_is_short_and_links_every_docs_page():
    readme = open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8').read()
    assert len(readme.splitlines()) <= 300
    for page in glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')):
        assert f'(docs/{osp.basename(page)})' in readme, page
