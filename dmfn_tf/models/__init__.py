"""The model parts: the generator and its dense multi-scale fusion block, the discriminator, the
frozen perceptual networks, and the losses that tie them together."""
