"""Side-by-side curves of the float32 and bfloat16 runs (issue 19)."""
import json, sys
root = sys.argv[1]
runs = {}
for dt in ('float32', 'bfloat16'):
  recs = [json.loads(l) for l in open(f'{root}/{dt}/metrics.jsonl')]
  runs[dt] = recs
def by(split, dt):
  return {r['step']: r for r in runs[dt] if r['split'] == split}
print('| step | train loss f32 | train loss bf16 | train acc. f32 | train acc. bf16 | val. acc. f32 | val. acc. bf16 |')
print('|---|---|---|---|---|---|---|')
tf, tb, vf, vb = by('train', 'float32'), by('train', 'bfloat16'), by('validation', 'float32'), by('validation', 'bfloat16')
for step in sorted(tf):
  if step % 50 and step not in vf: continue
  v = lambda d, k: f"{d[step][k]:.4f}" if step in d else ''
  print(f"| {step} | {v(tf,'loss')} | {v(tb,'loss')} | {v(tf,'accuracy')} | {v(tb,'accuracy')} | {v(vf,'accuracy')} | {v(vb,'accuracy')} |")
for dt in ('float32', 'bfloat16'):
  s = json.load(open(f'{root}/{dt}/summary.json'))
  print(dt, {k: s.get(k) for k in ('test_accuracy', 'best_validation_accuracy', 'train_seconds', 'final_step')})
