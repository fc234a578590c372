# The demo with STAN's 3D-convolution temporal modules.
_base_ = ['stan_tiny_synthetic.py']

model = dict(backbone=dict(temporal='conv'))
