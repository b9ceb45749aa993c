"""The GAN engine: everything that turns a `TrainSpec` into weights and weights into images.

It imports torch, numpy, Pillow and `shared.specs` / `shared.datafiles` only; the Celery task
adapts its hooks (stop flag, progress, artifact upload) to the outside world.

How it fits together:

- `train.train` is the training loop, in numbered sections; it talks to the outside only
  through `hooks.TrainingHooks`. `step.train_step` is one step of it: `critic_steps`
  discriminator updates, then one generator update.
- `data` (batches from MNIST, .npz, image archives and uploads; `toydata` generates
  ring8, grid25, gauss1d), `priors` (latents), `models` (mlp, dcgan, `stylegan` for the
  stylegan2 family, and `plugins`: a custom model's networks from the user's code bundle),
  `losses` (by name, with WGAN-GP's gradient penalty) are what the loop is made of;
  `augment` is DiffAugment, `style_regularisers` stylegan2's lazy path-length step;
  `precision` picks autocast and loss scaling, `ema` keeps the moving average of G;
  `seeding` derives every random stream from the job seed, so runs repeat and resume
  bitwise.
- `sharded` streams a dataset stored as shards instead of reading it whole: `shard_order`
  (which images each rank takes at each draw), `shard_reader` (images and labels out of the
  tar shards), `shard_stream` (the DataLoader whose worker processes decode ahead).
- `vae` is the VAE baseline (the GANs' networks as decoder and encoder, trained on the
  ELBO): `train.train` runs it through the same sections as the GANs, with the ELBO step of
  `train_vae.VaeTrainee`, and `vae_checkpoint` stores its decoder where sampling finds a
  generator.
- `checkpoint` writes and reads snapshots that load with `torch.load(weights_only=True)`;
  `distributed` pairs process-group set-up with teardown and agrees on stops across ranks.
- `sample` rebuilds a generator from a checkpoint and renders images per seed or along an
  interpolation; `latents` makes those latents (lerp, slerp, truncation), `style_space`
  stylegan2's W (truncation towards the mean w, W paths, inversion into W); `grids`
  draws image grids and scatter plots as deterministic PNG bytes.
- `errors` holds the named failures a user can act on.
"""
