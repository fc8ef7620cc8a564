"""The README's Python example runs as written (on TFDS's mock data), and
its figures are those of the files they come from."""

import re
import subprocess
import sys

import pytest

from conftest import COLLECTED, ROOT


@pytest.mark.slow
def test_the_readme_notebook_example_runs(tmp_path, mock_cifar, monkeypatch):
  readme = (ROOT / 'README.md').read_text()
  blocks = re.findall(r'```python\n(.*?)```', readme, re.S)
  assert len(blocks) == 1
  # A notebook's directory, not the checkout: the config path still loads.
  monkeypatch.chdir(tmp_path)
  code = (blocks[0]
          .replace("'/tmp/flaxdil/tiny'", repr(str(tmp_path / 'tiny')))
          # TFDS's mock data stands in for a data dir.
          .replace("'/path/to/shared/tensorflow_datasets'", 'None'))
  namespace = {}
  exec(compile(code, 'README.md', 'exec'), namespace)
  assert namespace['summary']['final_step'] == 20
  assert namespace['step'] == namespace['summary']['best_step']
  assert namespace['state'].params['classifier']['kernel'].shape == (16, 10)
  assert namespace['weights'].class_names[0] == 'airplane'


def test_the_backbone_example_in_deploy_md_runs():
  """docs/deploy.md's Flax module on the released weight's backbone."""
  text = (ROOT / 'docs' / 'deploy.md').read_text()
  (code,) = [b for b in re.findall(r'```python\n(.*?)```', text, re.S)
             if 'backbone()' in b]
  namespace = {}
  exec(compile(code, 'docs/deploy.md', 'exec'), namespace)
  assert [o.shape for o in namespace['outputs']] == [(2, 8, 8, 14),
                                                     (2, 4, 4, 14)]
  # The trained values are in the detector's tree, not fresh ones.
  trained = namespace['trained']['params']['block1']['joint']
  used = namespace['variables']['params']['backbone']['block1']['joint']
  assert (trained['pointwise']['kernel'] == used['pointwise']['kernel']).all()


def test_the_readme_states_the_suite_s_size(request):
  """The README's count of the suite's tests is the suite's (it drifted:
  214 stated, 216 run). Checked where the whole suite was collected."""
  collected, files = request.config.stash[COLLECTED]
  if files != {p.name for p in (ROOT / 'tests').glob('test_*.py')}:
    pytest.skip('not the whole suite')
  stated = re.search(r'the whole\s+suite,\s+(\d+)\s+tests',
                     (ROOT / 'README.md').read_text())
  assert stated, 'the README names the suite\'s size'
  assert int(stated.group(1)) == collected


def test_the_time_to_accuracy_tables_are_the_results_files():
  """README's and docs/results.md's time-to-accuracy table is what
  results/time_to_accuracy.py computes from the runs' own files, line for
  line: a figure edited by hand, or a run added without its table, fails."""
  printed = subprocess.run(
      [sys.executable, str(ROOT / 'results' / 'time_to_accuracy.py')],
      check=True, capture_output=True, text=True).stdout.strip()
  assert printed.count('\n') >= 3
  footer = printed.splitlines()[-1][:40]   # The line under the table.
  for doc in ('README.md', 'docs/results.md'):
    text = (ROOT / doc).read_text()
    assert printed in text, (
        f'{doc}: paste the table that python results/time_to_accuracy.py prints')
    # A paste that left an older table's lines behind leaves them twice.
    assert text.count(footer) == 1, f'{doc}: the table\'s lines are there twice'
