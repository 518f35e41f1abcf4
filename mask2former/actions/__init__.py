"""Every `mask2former <action>` of the command line, one module per action.

train, evaluate, inference, export, quantize, gen_trt_engine, mlflow_model and dataset each define
`register(subparsers)` and the function the action runs; `common.py` (spec loading, results folders, devices)
and `status.py` (status.json lines, CLI error handling) are what they share. The packages they drive
(`training`, `data`, `export`, `quantize`, `deploy`, `serving`) are libraries with no CLI code.
"""
