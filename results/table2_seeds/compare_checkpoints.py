"""Every array of the checkpoints two workdirs both hold, compared bit for bit
(absolute paths: Orbax needs them)."""
import sys, pathlib
import numpy as np, jax, orbax.checkpoint as ocp
def arrays(workdir, step):
  with ocp.PyTreeCheckpointer() as c:
    tree = c.restore(str(pathlib.Path(workdir) / 'checkpoints' / str(step) / 'default'))
  return {jax.tree_util.keystr(p): np.asarray(l) for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}
a, b = sys.argv[1], sys.argv[2]
steps = lambda w: sorted(int(p.name) for p in (pathlib.Path(w) / 'checkpoints').iterdir() if p.name.isdigit())
common = sorted(set(steps(a)) & set(steps(b)))
for step in common:
  x, y = arrays(a, step), arrays(b, step)
  same = sum(x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and x[k].tobytes() == y[k].tobytes() for k in x)
  print(f'step {step}: {same} of {len(x)} arrays bitwise equal' + ('' if x.keys() == y.keys() else ' (keys differ)'))
