"""The package's shape: rooms that import only the rooms below them, small
modules, and an installed package that works from anywhere."""

import ast
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = ROOT / 'flaxdil'

# Each room and the rooms it may import (README, "Code layout"). The base
# (errors.py, timing.py, quiet.py, cores.py) imports no other room; every room may import it.
ALLOWED = {
    'base': set(),
    'data': set(),
    'models': set(),
    'config': {'data', 'models'},
    'inspection': {'models'},
    'distributed': set(),
    'workdir': {'config', 'distributed'},
    'pretrained': {'config', 'data', 'models', 'workdir'},
    'training': {'config', 'data', 'models', 'inspection', 'distributed',
                 'workdir', 'pretrained'},
    'export': {'config', 'data', 'models', 'inspection', 'training',
               'workdir'},
    'predict': {'config', 'data', 'models', 'inspection', 'training',
                'workdir', 'pretrained', 'export'},
    'experiments': {'config', 'data', 'models', 'inspection', 'distributed',
                    'workdir', 'training', 'pretrained', 'export', 'predict'},
    'cli': {'config', 'data', 'models', 'inspection', 'distributed',
            'workdir', 'training', 'export', 'experiments', 'pretrained',
            'predict'},
}
_BASE = {'errors', 'timing', 'quiet', 'cores', '__init__'}


def _room(module: str) -> str:
  """'flaxdil.training.loop' → 'training'; the base modules → 'base'."""
  parts = module.split('.')[1:] or ['__init__']
  if parts[0] == '__main__':
    return 'cli'
  return 'base' if parts[0] in _BASE else parts[0]


def _modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    name = '.'.join(('flaxdil',) + path.relative_to(PACKAGE).with_suffix('').parts)
    yield name.removesuffix('.__init__'), path


def _imports(path: pathlib.Path):
  """Every flaxdil module named by an import, at any depth of the file."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module == 'flaxdil' or node.module.startswith('flaxdil.')):
      if node.module == 'flaxdil':
        yield from (f'flaxdil.{alias.name}' for alias in node.names)
      else:
        yield node.module
    elif isinstance(node, ast.Import):
      yield from (a.name for a in node.names if a.name.startswith('flaxdil'))


def test_every_room_imports_only_the_rooms_below_it():
  rooms = {_room(name) for name, _ in _modules()}
  assert rooms == set(ALLOWED), 'a room is missing from ALLOWED or the tree'
  wrong = []
  for name, path in _modules():
    room = _room(name)
    for imported in _imports(path):
      target = _room(imported)
      if target not in ALLOWED[room] | {'base', room}:
        wrong.append(f'{name} ({room}) imports {imported} ({target})')
  assert not wrong, '\n'.join(wrong)


def _module_graph() -> dict[str, set[str]]:
  """Each flaxdil module and the flaxdil modules it imports (at any depth
  of the file: a deferred import is still a dependency), `from flaxdil.a
  import b` counting as an import of the module flaxdil.a.b where it is
  one."""
  names = {name for name, _ in _modules()}
  graph = {}
  for name, path in _modules():
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module and (
          node.module.split('.')[0] == 'flaxdil'):
        for alias in node.names:
          sub = f'{node.module}.{alias.name}'
          targets.add(sub if sub in names else node.module)
      elif isinstance(node, ast.Import):
        targets |= {a.name for a in node.names
                    if a.name.split('.')[0] == 'flaxdil'}
    graph[name] = {t for t in targets if t in names and t != name
                   and t != 'flaxdil'}
  return graph


def test_no_import_circles():
  """A module never imports, through others, a module that imports it:
  data flows one way, and no import has to be deferred to dodge a circle."""
  graph = _module_graph()
  circles, state = [], {}

  def visit(name, path):
    state[name] = 'open'
    for target in sorted(graph[name]):
      if state.get(target) == 'open':
        circles.append(' -> '.join(path[path.index(target):] + [target]))
      elif target not in state:
        visit(target, path + [target])
    state[name] = 'done'

  for name in sorted(graph):
    if name not in state:
      visit(name, [name])
  assert not circles, '\n'.join(circles)


def test_no_module_is_long():
  """A module over ~300 lines does two jobs: split it by job."""
  long = [f'{name}: {len(path.read_text().splitlines())} lines'
          for name, path in _modules()
          if len(path.read_text().splitlines()) > 310]
  assert not long, long


@pytest.mark.slow
def test_installed_package_imports_and_runs_from_any_directory(tmp_path):
  """Notebooks and other projects import flaxdil from wherever they are;
  the command line needs no checkout on sys.path."""
  code = ('import flaxdil, flaxdil.training.loop, flaxdil.config.files; '
          'print(flaxdil.__version__)')
  result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  config = ROOT / 'configs' / 'tiny.py'
  result = subprocess.run(
      [sys.executable, '-m', 'flaxdil', f'--config={config}', '--mode=inspect',
       '--json'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert '"total_params": 901' in result.stdout
  assert result.stderr == ''  # A clean run prints no warnings.
