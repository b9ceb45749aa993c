"""The GAN engine: everything that turns a `TrainSpec` into weights and weights into images.

It imports torch, numpy, Pillow and `shared.specs` only; the Celery task adapts its hooks
(stop flag, progress, artifact upload) to the outside world.

How it fits together:

- `train.train` is the training loop, in numbered sections; it talks to the outside only
  through `hooks.TrainingHooks`.
- `data` (ring8 toy points, MNIST idx files), `priors` (latents), `models` (mlp, dcgan),
  `losses` (by name) are what the loop is made of; `seeding` derives every random stream
  from the job seed, so runs repeat and resume bitwise.
- `checkpoint` writes and reads snapshots that load with `torch.load(weights_only=True)`;
  `distributed` pairs process-group set-up with teardown and agrees on stops across ranks.
- `sample` rebuilds a generator from a checkpoint and renders images per seed; `grids`
  draws image grids and scatter plots as deterministic PNG bytes.
- `errors` holds the named failures a user can act on.
"""
