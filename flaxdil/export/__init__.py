"""The export room: a trained checkpoint as deployable artifacts, verified
on the whole test split and timed (--mode=export; the packages of
requirements-export.txt, which training does not need).

  onnx_graph.py  the float ONNX graph from the inspection's description, its
                 static int8 form, ONNX Runtime sessions
  artifacts.py   export(): ONNX, int8 ONNX, jax.export; verify, time, report
"""
