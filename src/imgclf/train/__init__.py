"""Training: batch loaders over the uint8 cache, the LightningModule, callbacks and `fit`."""
