"""Statistics over seeds: mean, spread, a 95 % interval, paired differences.

A 95 % interval here is Student's t interval of the mean, mean ± t·s/√n,
with s the sample standard deviation (n - 1 in the denominator): with 3
seeds t = 4.30, so an interval is wide, as it should be with so few runs.
A paired difference (run B minus run A at the same seed, the same data
order and initialisation) removes what the seed does to both, so it can
resolve a smaller gap than the two intervals side by side.
"""

from __future__ import annotations

import math

# Two-sided 95 % quantiles of Student's t distribution by degrees of freedom
# (t_{0.975, df}); past 30 the normal quantile is within 2 %.
_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447,
          7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179,
          13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
          19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
          25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042}
_Z_975 = 1.960


def t_975(degrees_of_freedom: int) -> float:
  return _T_975.get(degrees_of_freedom, _Z_975)


def describe(values: list[float]) -> dict:
  """n, mean, sample standard deviation and the 95 % interval of the mean
  (std and interval None for a single value)."""
  n = len(values)
  mean = sum(values) / n
  if n < 2:
    return {'n': n, 'mean': mean, 'std': None, 'ci95': None}
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
  half = t_975(n - 1) * std / math.sqrt(n)
  return {'n': n, 'mean': mean, 'std': std, 'ci95': [mean - half, mean + half]}


def paired_differences(values: dict, reference: dict) -> dict | None:
  """`values` minus `reference` at each seed both have ({seed: value}):
  the differences and their description, with whether the interval
  excludes zero; None where no seed is shared."""
  seeds = sorted(set(values) & set(reference))
  if not seeds:
    return None
  differences = [values[s] - reference[s] for s in seeds]
  result = {'seeds': seeds, 'differences': differences,
            **describe(differences)}
  interval = result['ci95']
  result['excludes_zero'] = (interval is not None
                             and (interval[0] > 0 or interval[1] < 0))
  return result
