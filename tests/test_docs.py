"""The README's Python example runs as written (on TFDS's mock data)."""

import re

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_readme_notebook_example_runs(tmp_path, mock_cifar, monkeypatch):
  readme = (ROOT / 'README.md').read_text()
  blocks = re.findall(r'```python\n(.*?)```', readme, re.S)
  assert len(blocks) == 1
  monkeypatch.chdir(ROOT)  # Its paths are the checkout's, as in a notebook there.
  code = blocks[0].replace("'workdirs/tiny'", repr(str(tmp_path / 'tiny')))
  namespace = {}
  exec(compile(code, 'README.md', 'exec'), namespace)
  assert namespace['summary']['final_step'] == 20
  assert namespace['step'] == namespace['summary']['best_step']
  assert namespace['state'].params['classifier']['kernel'].shape == (16, 10)
