"""The inspection room: what a model is, read off the model itself.

  summary.py  layers in call order, parameters, multiply-adds, Eq. (2)-(4),
              receptive fields, and the inference spec (one JSON document)
  text.py     that summary as terminal tables
"""
